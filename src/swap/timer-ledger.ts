/**
 * The timers a generation creates, so that a generation kept alive after its
 * dispose can be blamed on the timer that holds it. The generation's code gets
 * these functions in place of the globals of the same name.
 */
interface Entry {
  kind: 'setTimeout' | 'setInterval' | 'setImmediate';
  site: Error;
}

export class TimerLedger {
  private readonly active = new Map<unknown, Entry>();

  /**
   * The replacements, in the order of TIMER_NAMES. Request handlers call these
   * on the hot path, so short one-shot timers (they free themselves when they
   * fire) go straight to the native functions; only intervals and one-shots of
   * a second or more are recorded.
   */
  api(): unknown[] {
    const track = <A extends unknown[], H>(kind: Entry['kind'], create: (cb: (...a: A) => void, ...rest: unknown[]) => H, oneShot: boolean) => {
      return (callback: (...a: A) => void, ...rest: unknown[]): H => {
        if (typeof callback !== 'function' || (oneShot && !(Number(rest[0]) >= 1000))) return (create as (...x: unknown[]) => H)(callback, ...rest);
        let handle: H;
        const wrapped = oneShot
          ? (...a: A) => {
              this.active.delete(handle);
              callback(...a);
            }
          : callback;
        handle = create(wrapped, ...rest);
        this.active.set(handle, { kind, site: new Error(kind) });
        return handle;
      };
    };
    const clear = (native: (h: never) => void) => (handle: unknown) => {
      this.active.delete(handle);
      native(handle as never);
    };
    return [
      track('setTimeout', setTimeout as never, true),
      track('setInterval', setInterval as never, false),
      track('setImmediate', setImmediate as never, true),
      clear(clearTimeout as never),
      clear(clearInterval as never),
      clear(clearImmediate as never),
    ];
  }

  /** Where each still-active timer was created, as `setInterval at file:line`. */
  describe(mapFrame: (frame: string) => string): string[] {
    return [...this.active.values()].map((e) => {
      const frame = (e.site.stack ?? '').split('\n').find((l, i) => i > 0 && !l.includes('timer-ledger')) ?? '';
      return `${e.kind} ${mapFrame(frame.trim().replace(/^at\s+/, ''))}`.trim();
    });
  }
}

export const TIMER_NAMES = ['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate'] as const;
