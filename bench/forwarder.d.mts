/** Types of forwarder.mjs, for the TypeScript test that uses it. */
export interface ForwarderChain {
  /** The first hop's `POST /records` URL. */
  url: string;
  /** The three hops' pids: sink, middle, first. */
  pids: number[];
  /** SIGTERM to each hop (SIGKILL after 3 s); resolves once all exited. */
  stop(): Promise<void>;
}

/** Starts the bare forwarder's three hops on free loopback ports. */
export declare function startForwarderChain(options: { handlerFile: string; outFile: string }): Promise<ForwarderChain>;
