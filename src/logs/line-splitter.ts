import { StringDecoder } from 'node:string_decoder';

/** Longer lines are cut into pieces of this size, so that a stream without newlines cannot grow the master's memory. */
export const MAX_LINE_BYTES = 1024 * 1024;

export interface Line {
  text: string;
  /** A piece of a line longer than MAX_LINE_BYTES (the rest follows in the next piece). */
  partial: boolean;
}

/**
 * Turns a byte stream into whole lines. Chunks from a pipe end anywhere, in
 * the middle of a line or of a UTF-8 character; a line is emitted only once
 * its newline arrived (or at the end of the stream), so no line is ever split
 * or interleaved with another worker's.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  constructor(
    private readonly emit: (line: Line) => void,
    private readonly maxBytes = MAX_LINE_BYTES,
  ) {}

  push(chunk: Buffer | string): void {
    let text = this.pending + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    let newline: number;
    while ((newline = text.indexOf('\n')) !== -1) {
      this.line(stripCr(text.slice(0, newline)));
      text = text.slice(newline + 1);
    }
    this.pending = this.cut(text);
  }

  /** The stream ended: what is left is the last line, even without its newline. */
  end(): void {
    const rest = this.pending + this.decoder.end();
    this.pending = '';
    if (rest !== '') this.line(stripCr(rest));
  }

  private line(text: string): void {
    this.emit({ text: this.cut(text), partial: false });
  }

  /** Emit whole pieces of an over-long line, marked partial; returns the rest. Counted in characters: cheap, and never under the bound's intent. */
  private cut(text: string): string {
    let rest = text;
    while (rest.length > this.maxBytes) {
      this.emit({ text: rest.slice(0, this.maxBytes), partial: true });
      rest = rest.slice(this.maxBytes);
    }
    return rest;
  }
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
