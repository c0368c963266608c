/**
 * What the threads channel does for job loops: a thread's loops stop when its
 * worker drains, and a loop started in a thread counts as the process's first.
 * The loops live in jobs/, above config; jobs/running-loops.ts fills these in
 * when it loads, so config never imports jobs. Until then no loop exists and
 * there is nothing to stop or announce.
 */
export interface LoopHooks {
  stopLoops(): Promise<void>;
  loopStarted(): void;
}

export const loopHooks: LoopHooks = {
  stopLoops: () => Promise.resolve(),
  loopStarted: () => {},
};

export function setLoopHooks(hooks: LoopHooks): void {
  Object.assign(loopHooks, hooks);
}
