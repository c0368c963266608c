export { defineService, isService } from './service.js';
export type { ServiceContext, ServiceDefinition, ServerLike, Service } from './service.js';
export { Slot } from './core/slot.js';
export type { SlotHooks, SlotOptions, SlotEvent, BuildContext } from './core/slot.js';
export { Generation } from './core/generation.js';
export type { Lease } from './core/lease.js';
export { GraftError, ErrorCodes } from './errors.js';
export type { ErrorCode } from './errors.js';
