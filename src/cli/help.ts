export const HELP = `NAME
    sealcache - offline-first, encrypted secret cache for edge gateways

SYNOPSIS
    sealcache [--config FILE] [--socket PATH] [--json] COMMAND [ARGS]

COMMANDS
    daemon                 Run the daemon in the foreground (systemd starts this).
    get NAME [--json|--raw]
                           Print a secret's value. --raw: the exact bytes, no newline;
                           --json: the API object.
    list [--prefix P]      Secrets this account may read, with state and age (never values).
    status                 Daemon health: seal, providers, stale and unsynced secrets,
                           and the failing ones with their errors.
    refresh [NAME]         Ask the daemon to sync now (needs an admin policy rule).
    audit [--since 1h|ISO] [--name NAME] [--limit N]
                           Who read what, what was denied, admin actions (needs an
                           admin policy rule). Names and outcomes only, never values.
    init [--reseal [--recovery-key-file F]]
                           Create data_dir and seal a new cache key (TPM seal types
                           also print a recovery key, once). --reseal: seal the
                           existing cache key again to the TPM's current PCR values
                           (after a firmware update); the key comes from the old
                           seal, or from the recovery key in F. Refused while the
                           daemon runs unsealed; a daemon waiting to unseal picks
                           up the new seal.
    rotate-kek             A new cache key; every data key re-wrapped in one
                           transaction (through the daemon when it runs).
    doctor                 Check config, permissions, sealer, socket, backends and,
                           with an mqtt section, the broker and the trust keys.
    fleet keygen --out F   Make an Ed25519 key pair for signing fleet commands: F
                           (private, 0600; keep it off the gateways) and F.pub (for
                           each gateway's mqtt.commands.trust). Never overwrites.
    fleet sign --key F --aud DEVICE|fleet --cmd refresh|revoke [--name N]... [--all] [--ttl 7d] [--kid NAME]
                           Print a signed command (a JWT) for any MQTT publisher:
                           mosquitto_pub -t sealcache/DEVICE/cmd -m "$(sealcache fleet sign ...)".
                           --name (repeatable) or --all; --kid defaults to F's name
                           without .key/.pem; --ttl at most the gateways'
                           mqtt.commands.max_lifetime (default 30d).
    version                Print the version.

OPTIONS
    --config FILE          Config file (default /etc/sealcache/sealcache.yaml, or $SEALCACHE_CONFIG).
    --socket PATH          Daemon socket (overrides the config's socket).
    --data-dir DIR         Overrides data_dir.
    --log-level LEVEL      Overrides log.level (daemon).
    --json                 Machine-readable output on stdout; an error is then one JSON
                           line {"error":CODE,"message":...} on stderr (CODE: the API's
                           error codes, usage, config), with the same exit status.
    -h, --help             This text.

EXIT STATUS
    0 ok, 1 failure, 2 usage, 3 not found, 4 forbidden, 5 unavailable.
    4: refused by policy, or an account outside the socket's group; 5: daemon
    down, sealed, secret not synced or expired, rate limited.

ENVIRONMENT
    SEALCACHE_CONFIG       The config file when --config is not given.
    SEALCACHE_<KEY>        Overrides a config key, e.g. SEALCACHE_SYNC_INTERVAL=1m,
                           SEALCACHE_LOG_LEVEL=debug. Precedence: file < environment < flags.

FILES
    /etc/sealcache/sealcache.yaml       The config: data_dir, socket, seal, sync, providers,
                                        secrets, policy, log (commented; a conffile).
    /var/lib/sealcache/                 data_dir: cache.db and the sealed cache key (0700).
    /run/sealcache/sealcache.sock       The socket (0660, group sealcache: agents join it).
    /usr/lib/systemd/system/sealcache.service
                                        The hardened unit; change it with systemctl edit sealcache.

SEE ALSO
    systemctl(1), journalctl(1); the README's "Config reference" and "Socket API".
`;
