# /etc/edge-agent/agent.yaml.tpl: sealcache render writes /run/edge-agent/agent.yaml from it.
# \{{ secret "NAME" }} is replaced by the value exactly as it is, with no quoting
# or escaping: quote it as the file's format needs (here the values must not
# hold a double quote). A backslash before the two braces writes them as they are.
kafka:
  brokers: ["kafka-1.plant.example:9093"]
  username: "{{ secret "kafka/username" }}"
  password: "{{ secret "kafka/password" }}"
