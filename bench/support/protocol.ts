// Messages between the load coordinator (load.ts) and its client processes
// (client.ts), over the child_process IPC channel.

export interface WorkerJob {
  readonly socket: string;
  /** Request paths, used round-robin so lookups spread over every name. */
  readonly paths: readonly string[];
  /** Where in `paths` this worker starts, so workers do not walk in lock step. */
  readonly offset: number;
  /** Concurrent keep-alive connections, each one sequential client. */
  readonly connections: number;
  /** Time mode: requests during the warm-up are sent but not counted. */
  readonly warmupMs: number;
  /** Time mode: how long to measure after the warm-up. */
  readonly durationMs?: number;
  /** Count mode (when set): this many requests in all, spread over the connections. */
  readonly requests?: number;
}

export type ToWorker = { readonly type: "job"; readonly job: WorkerJob } | { readonly type: "go" };

export interface WorkerResult {
  readonly type: "result";
  readonly count: number;
  readonly errors: number;
  /** One entry per measured request, in microseconds. */
  readonly latenciesUs: number[];
}

export type FromWorker = { readonly type: "hello" } | { readonly type: "ready" } | WorkerResult;
