import { errorFields, errorMessage } from './errors.js';
import type { Fields, Logger } from './log.js';
import type { SlotEvent } from './slot.js';

/** What a layer calls each step of its slot in its log; a step left out is not logged. */
export interface SlotMessages {
  build?: string;
  commit?: string;
  reject?: string;
  drain?: string;
  dispose?: string;
  disposeError?: string;
}

/**
 * One way every layer logs its generations: the same fields (generation,
 * previous, buildMs, drainMs, code, error) whatever the slot holds.
 */
export function slotEventLogger(log: Logger, messages: SlotMessages, extra: (e: SlotEvent) => Fields = () => ({})): (e: SlotEvent) => void {
  return (e) => {
    switch (e.type) {
      case 'build':
        if (messages.build) log.info(messages.build, { generation: e.version, ...extra(e) });
        break;
      case 'commit':
        if (messages.commit) log.info(messages.commit, { generation: e.version, previous: e.previous, buildMs: e.buildMs, ...extra(e) });
        break;
      case 'reject':
        if (messages.reject) {
          log.error(messages.reject, { generation: e.version, ...errorFields(e.error), ...extra(e) });
        }
        break;
      case 'drain':
        if (messages.drain) log.info(messages.drain, { generation: e.version, ...extra(e) });
        break;
      case 'dispose':
        if (messages.dispose) log.info(messages.dispose, { generation: e.version, drainMs: e.drainMs, timedOut: e.timedOut, ...extra(e) });
        break;
      case 'dispose-error':
        if (messages.disposeError) log.error(messages.disposeError, { generation: e.version, error: errorMessage(e.error), ...extra(e) });
        break;
    }
  };
}
