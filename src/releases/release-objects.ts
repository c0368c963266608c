import { Objm, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { GraftError, errorMessage } from '../core/errors.js';

/** The fleet's releases, in the NATS server the fleet already uses: one Object Store bucket, an object per release. */
export const RELEASES_BUCKET = 'graft_releases';

/** An object's name: the service, then the release's id (its files' digest). */
export function objectName(service: string, id: string): string {
  return `${service}.${id}`;
}

/**
 * Releases travel between hosts as tarballs in a JetStream Object Store:
 * uploaded once by `graft fleet deploy`, fetched by each host (the store
 * checks the object's SHA-256 digest as it reads it; the host then checks
 * that the files digest to the id the order named).
 */
export class ReleaseObjects {
  private constructor(private readonly bucket: ObjectStore) {}

  static async open(nc: NatsConnection): Promise<ReleaseObjects> {
    try {
      return new ReleaseObjects(await new Objm(nc).create(RELEASES_BUCKET));
    } catch (err) {
      throw new GraftError('GRAFT_STORE_UNREACHABLE', `the releases bucket ${RELEASES_BUCKET} cannot be opened (${errorMessage(err)}); the fleet's NATS server needs JetStream with room for it`, { cause: err });
    }
  }

  /** Upload a release's tarball once: an object of that id already there is kept. */
  async put(service: string, id: string, tarball: Uint8Array): Promise<{ uploaded: boolean }> {
    const name = objectName(service, id);
    // A deleted object's info is still there (marked deleted): a pruned release is uploaded again.
    const info = await this.bucket.info(name);
    if (info && !info.deleted) return { uploaded: false };
    try {
      await this.bucket.putBlob({ name, description: `graft release ${id} of ${service}` }, tarball);
    } catch (err) {
      throw new GraftError('GRAFT_STORE_UNREACHABLE', `release ${id} could not be uploaded to ${RELEASES_BUCKET} (${errorMessage(err)}); is the bucket full?`, { cause: err });
    }
    return { uploaded: true };
  }

  /** A release's tarball, its object digest checked; GRAFT_RELEASE_UNKNOWN when the bucket does not hold it. */
  async get(service: string, id: string): Promise<Uint8Array> {
    let data: Uint8Array | null;
    try {
      data = await this.bucket.getBlob(objectName(service, id));
    } catch (err) {
      const message = errorMessage(err);
      if (/digest/i.test(message)) throw new GraftError('GRAFT_RELEASE_TAMPERED', `release ${id} in ${RELEASES_BUCKET} does not match its object digest (${message}); refused`, { cause: err });
      throw new GraftError('GRAFT_STORE_UNREACHABLE', `release ${id} could not be fetched from ${RELEASES_BUCKET} (${message})`, { cause: err });
    }
    if (!data) throw new GraftError('GRAFT_RELEASE_UNKNOWN', `release ${id} of ${service} is not in the fleet's ${RELEASES_BUCKET} bucket; deploy it with graft fleet deploy`);
    return data;
  }

  /** The service's releases in the bucket, newest first. */
  async list(service: string): Promise<Array<{ id: string; mtime: string; size: number }>> {
    const prefix = `${service}.`;
    return (await this.bucket.list())
      .filter((o) => o.name.startsWith(prefix) && !o.deleted)
      .map((o) => ({ id: o.name.slice(prefix.length), mtime: o.mtime, size: o.size }))
      .sort((a, b) => b.mtime.localeCompare(a.mtime));
  }

  /** Delete the service's releases no host runs, beyond the newest `keep`; returns the ids deleted. */
  async prune(service: string, running: Set<string>, keep: number): Promise<string[]> {
    const gone = (await this.list(service)).filter((o, i) => i >= keep && !running.has(o.id)).map((o) => o.id);
    for (const id of gone) await this.bucket.delete(objectName(service, id));
    return gone;
  }
}
