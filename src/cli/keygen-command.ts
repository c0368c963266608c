import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { GraftError } from '../core/errors.js';
import { parse } from './args.js';

/**
 * `graft keygen --hmac FILE`: a shared secret (every master and operator holds it).
 * `graft keygen --ed25519 FILE`: a private key for operators (FILE) and its public
 * key for the masters (FILE.pub), which can check orders but never sign one.
 */
export async function keygen(argv: string[]): Promise<number> {
  const { values } = parse('keygen', argv, { hmac: { type: 'string' }, ed25519: { type: 'string' } }, 0);
  if ((values.hmac === undefined) === (values.ed25519 === undefined)) {
    throw new GraftError('GRAFT_BAD_ARGUMENT', 'graft keygen needs one of --hmac FILE or --ed25519 FILE');
  }
  if (values.hmac !== undefined) {
    create(values.hmac, `${randomBytes(32).toString('hex')}\n`, 0o600);
    console.log(`wrote an HMAC-SHA256 secret to ${values.hmac} (mode 0600): give it to every master (--bus-key) and to whoever sends orders`);
    return 0;
  }
  const file = values.ed25519!;
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  create(file, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  create(`${file}.pub`, publicKey.export({ type: 'spki', format: 'pem' }) as string, 0o644);
  console.log(`wrote an Ed25519 private key to ${file} (mode 0600; it signs orders: \`graft order --bus-key ${file}\`)`);
  console.log(`and its public key to ${file}.pub (masters check orders with it: \`graft start --bus-key ${file}.pub\`)`);
  return 0;
}

/** A new file; an existing key is never overwritten. */
function create(file: string, text: string, mode: number): void {
  try {
    writeFileSync(file, text, { mode, flag: 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new GraftError('GRAFT_BAD_ARGUMENT', `${file} exists; graft keygen never overwrites a key (remove it, or choose another file)`);
    throw new GraftError('GRAFT_BUS_KEY', `${file} cannot be written (${code ?? err})`);
  }
}
