#!/usr/bin/env -S node --max-semi-space-size=2
// The flag matches packaging/daemon-node-flags.json (a test checks): a 2 MB young
// generation keeps `sealcache daemon` ~25 MB smaller at 10,000 secrets for no
// measurable lookup cost; harmless for the short-lived commands.
import "../dist/main.mjs";
