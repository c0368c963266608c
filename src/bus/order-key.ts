import { createHmac, createPrivateKey, createPublicKey, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { GraftError } from '../core/errors.js';

/**
 * The key a fleet signs and checks orders with, read from a file (`--bus-key`):
 * - a PEM Ed25519 private key: signs, and checks (operators, and masters that may send);
 * - a PEM Ed25519 public key: checks only (masters that must never sign);
 * - anything else: a shared HMAC-SHA256 secret (at least 32 bytes), which both signs and checks.
 */
export interface OrderKey {
  readonly alg: 'hmac-sha256' | 'ed25519';
  /** Where it came from, for messages. */
  readonly file: string;
  readonly canSign: boolean;
  sign(data: Buffer): string;
  verify(data: Buffer, signature: string): boolean;
}

const MIN_SECRET_BYTES = 32;

/**
 * The key `--bus-key` names (relative to `cwd`), for `who` (`--bus`, `graft
 * order`, …) to check orders with or to sign them. Missing, unusable, or a
 * public key asked to sign: GRAFT_BUS_KEY, from every command alike.
 */
export function orderKeyFor(use: 'check' | 'sign', file: string | undefined, who: string, cwd = process.cwd()): OrderKey {
  if (!file) {
    const why = use === 'check' ? 'the key every order is checked with' : 'the key that signs orders (the masters check them with theirs)';
    throw new GraftError('GRAFT_BUS_KEY', `${who} needs --bus-key FILE: ${why} (\`graft keygen --hmac FILE\` or \`--ed25519 FILE\`)`);
  }
  const key = loadOrderKey(resolve(cwd, file));
  if (use === 'sign' && !key.canSign) throw new GraftError('GRAFT_BUS_KEY', `${file} is a public key: it checks orders but cannot sign them; give the private key`);
  return key;
}

export function loadOrderKey(file: string): OrderKey {
  let text: Buffer;
  try {
    text = readFileSync(file);
  } catch (err) {
    throw new GraftError('GRAFT_BUS_KEY', `order key ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? err}); point --bus-key at the fleet's key file`);
  }
  const pem = text.toString('utf8');
  if (pem.includes('-----BEGIN')) return pemKey(file, pem);
  const secret = Buffer.from(pem.trim());
  if (secret.length < MIN_SECRET_BYTES) {
    throw new GraftError('GRAFT_BUS_KEY', `order key ${file} holds ${secret.length} bytes; an HMAC secret needs at least ${MIN_SECRET_BYTES} (e.g. \`openssl rand -hex 32 > ${file}\`)`);
  }
  return hmacKey(file, secret);
}

export function hmacKey(file: string, secret: Buffer): OrderKey {
  const mac = (data: Buffer) => createHmac('sha256', secret).update(data).digest();
  return {
    alg: 'hmac-sha256',
    file,
    canSign: true,
    sign: (data) => mac(data).toString('base64'),
    verify: (data, signature) => {
      const given = Buffer.from(signature, 'base64');
      const expected = mac(data);
      return given.length === expected.length && timingSafeEqual(given, expected);
    },
  };
}

function pemKey(file: string, pem: string): OrderKey {
  let privateKey: KeyObject | undefined;
  let publicKey: KeyObject;
  try {
    if (pem.includes('PRIVATE KEY')) {
      privateKey = createPrivateKey(pem);
      publicKey = createPublicKey(privateKey);
    } else {
      publicKey = createPublicKey(pem);
    }
  } catch (err) {
    throw new GraftError('GRAFT_BUS_KEY', `order key ${file} is not a PEM key Node can read (${(err as Error).message})`);
  }
  if (publicKey.asymmetricKeyType !== 'ed25519') {
    throw new GraftError('GRAFT_BUS_KEY', `order key ${file} is a ${publicKey.asymmetricKeyType} key; graft signs orders with Ed25519 (\`openssl genpkey -algorithm ed25519\`) or an HMAC secret`);
  }
  return {
    alg: 'ed25519',
    file,
    canSign: privateKey !== undefined,
    sign: (data) => {
      if (!privateKey) throw new GraftError('GRAFT_BUS_KEY', `order key ${file} is a public key: it checks orders but cannot sign them; use the private key`);
      return sign(null, data, privateKey).toString('base64');
    },
    verify: (data, signature) => {
      try {
        return verify(null, data, publicKey, Buffer.from(signature, 'base64'));
      } catch {
        return false;
      }
    },
  };
}
