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
    import NAME --from-file F [--delete-source]
                           Store F's bytes (at most 64 KiB: a bootstrap token, a
                           one-time credential) as secret NAME: sealed like every
                           value, listed with provider imported, never refreshed,
                           kept until revoked. A name a provider serves is refused.
                           --delete-source overwrites F with zeros and removes it,
                           only once the value is stored. Admin.
    revoke NAME|--all      Crypto-shred: the value, its data key and every older
                           version are deleted from cache.db and its WAL (SQLite
                           secure_delete, WAL truncated, file vacuumed); NAME (a
                           hierarchy: every parameter under it) answers 410 revoked
                           until it is fetched again. --all also rotates the cache
                           key and advances the TPM anti-rollback counter, so no old
                           copy of the cache opens. Admin; through the daemon when
                           it runs, on the cache directly when it is stopped.
    exec --env VAR=NAME... [--on-change restart|signal:SIG|none] [--wait DURATION] -- CMD ARGS
                           Run CMD with secret NAME in environment variable VAR (never
                           in its argv or a file), as its supervisor: the signals exec
                           gets (TERM, INT, HUP, QUIT, USR1, USR2, WINCH, ALRM) go to
                           CMD, and exec exits with CMD's status (128+N when a signal
                           ended it; 127 CMD not found, 126 not executable). When a
                           named secret changes: restart (default; SIGTERM, 10 s
                           grace, SIGKILL to CMD's process group, CMD again with the
                           new values; changes within 2 s are one restart),
                           signal:SIG (CMD is sent SIG; its environment cannot
                           change, so this is for a CMD that re-reads its secrets
                           elsewhere, such as a file kept by render --watch), or
                           none. A name that is unknown, forbidden, not synced or
                           expired, or a value holding a NUL byte, stops exec before
                           CMD runs, naming the --env. --wait: wait up to DURATION
                           for names not synced yet and for the daemon (at boot).
                           Follows changes through daemon restarts; CMD keeps running.
    render --template T --out F [--mode 0600] [--watch] [--on-change CMD]
                           Write F from template T, where {{ secret "NAME" }} stands
                           for the value, as it is (nothing escaped; \\{{ writes {{).
                           Several --template/--out pairs may be given. F is written
                           through a temporary file in its folder and a rename, so a
                           reader sees the old file or the new, never part of one;
                           mode 0600 (--mode: octal) and owned by the caller; not
                           rewritten when unchanged. A template that does not parse
                           (line and column given) or a name that is unknown, not
                           synced, forbidden or revoked fails the whole render and
                           leaves every file as it was. --watch: render again when
                           a secret changes (changes within 2 s are one), through
                           daemon restarts, until SIGTERM/SIGINT. --on-change: run
                           CMD with /bin/sh -c after a render that changed a file
                           (its output goes to stderr).
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
    down, sealed, secret not synced or expired, rate limited. exec: CMD's own
    status once CMD has run; 126/127 when it cannot be started.

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
