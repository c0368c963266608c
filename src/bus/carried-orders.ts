import { GraftError } from '../core/errors.js';

/** How many recent bus orders a master remembers as carried out, and config orders it can undo. */
const ORDERS_KEPT = 50;

/** What a master hands its successor at `graft upgrade`: the memory is the service's, not the process's. */
export interface CarriedOrdersState {
  ids: string[];
  /** The override layer before each config order changed it, oldest first. */
  undoable: Array<[string, Record<string, unknown>]>;
}

/**
 * The bus orders this master (or a predecessor) carried out lately: their
 * ids, which the fleet registry shows as a rollout's proof that a host did
 * it, and what the top config layer held before each config order changed
 * it, so that a fleet rollback can ask for it back (`undo`) without the layer
 * ever crossing the network. Bounded: a master runs for months.
 */
export class CarriedOrders {
  private readonly done: string[];
  private readonly undoable: Map<string, Record<string, unknown>>;

  constructor(inherited?: CarriedOrdersState) {
    this.done = [...(inherited?.ids ?? [])];
    this.undoable = new Map(inherited?.undoable);
  }

  /** Ids carried out, newest last. */
  get ids(): string[] {
    return [...this.done];
  }

  carriedOut(ids: string[]): void {
    this.done.push(...ids);
    this.done.splice(0, Math.max(0, this.done.length - ORDERS_KEPT));
  }

  /** The override layer as it was before `order` changed it. */
  changedConfig(order: string, before: Record<string, unknown>): void {
    this.undoable.set(order, before);
    for (const id of this.undoable.keys()) if (this.undoable.size > ORDERS_KEPT) this.undoable.delete(id);
  }

  /** What the layer held before `order`; GRAFT_BAD_ARGUMENT if this master does not know. */
  before(order: string): Record<string, unknown> {
    const before = this.undoable.get(order);
    if (!before) throw new GraftError('GRAFT_BAD_ARGUMENT', `nothing to undo: order ${order} did not change this master's config overrides (or is more than ${ORDERS_KEPT} orders old)`);
    return before;
  }

  /** `order` was undone: a second undo of it has nothing to put back. */
  undone(order: string): void {
    this.undoable.delete(order);
  }

  carried(): CarriedOrdersState {
    return { ids: this.ids, undoable: [...this.undoable] };
  }
}
