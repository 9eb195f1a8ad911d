/**
 * A progress line for long work (`usagectl produce`, `export`, `reconcile`, `invoice`): one line on stderr, rewritten
 * in place (`\r`, erase line, text) at most every `intervalMs` (150 ms by default), erased when the work ends.
 *
 * It shows only when the stream is a terminal (`isTTY`); on anything else — a pipe, a file, the tests' spawned
 * processes — every method is a no-op, so scripted output stays byte for byte what it was. `CI` is deliberately not
 * consulted: a CI job whose stderr is a pipe (nearly all) sees nothing because of `isTTY`, and one that allocates a
 * terminal gets the line like any other terminal.
 *
 * Hand-written rather than a library: the ones that fit (cli-progress, log-update) draw bars or multi-line frames
 * with cursor hiding and several dependencies, none of which a single throttled status line needs.
 */

/** The part of a `tty.WriteStream` the line uses (a fake one in tests). */
export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(chunk: string): unknown;
}

export interface ProgressOptions {
  /** Default `process.stderr`. */
  stream?: ProgressStream;
  /** Least time between two draws, ms. Default 150. */
  intervalMs?: number;
  /** Clock, ms. Default `Date.now`. */
  now?: () => number;
}

export interface Progress {
  /** Whether anything is drawn at all (the stream is a terminal). */
  readonly active: boolean;
  /**
   * Shows `line` (or what the function answers when the line is drawn; an empty string draws nothing). Throttled:
   * a call within `intervalMs` of the last draw is drawn once that interval has passed, the latest call winning.
   */
  update(line: string | (() => string)): void;
  /** Redraws `render()` every `everyMs` (default `intervalMs`) until `done()`; the timer never holds the process. */
  track(render: () => string, everyMs?: number): void;
  /** Erases the line now, before something else is written to the stream; the next update draws it again. */
  clear(): void;
  /** Stops: erases the line and, when given, writes `summary` and a newline in its place. Later calls do nothing. */
  done(summary?: string): void;
}

const ERASE = "\r\x1b[2K";

const inactive: Progress = {
  active: false,
  update() {},
  track() {},
  clear() {},
  done() {},
};

export function createProgress(options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  if (stream.isTTY !== true) return inactive;
  const intervalMs = options.intervalMs ?? 150;
  const now = options.now ?? (() => Date.now());
  let pending: string | (() => string) | undefined;
  let shown: string | undefined;
  let lastDraw = Number.NEGATIVE_INFINITY;
  let timer: NodeJS.Timeout | undefined;
  let ticker: NodeJS.Timeout | undefined;
  let stopped = false;

  const draw = () => {
    timer = undefined;
    if (stopped || pending === undefined) return;
    const next = pending;
    pending = undefined;
    lastDraw = now();
    let text = typeof next === "function" ? next() : next;
    // Longer than the terminal is wide, it would wrap and `\r` would rewrite only its last row.
    const width = stream.columns ?? 0;
    if (width > 1 && text.length > width - 1) text = `${text.slice(0, width - 2)}…`;
    if (text.length === 0 || text === shown) return;
    shown = text;
    stream.write(`${ERASE}${text}`);
  };

  const progress: Progress = {
    active: true,
    update(line) {
      if (stopped) return;
      pending = line;
      const wait = lastDraw + intervalMs - now();
      if (wait <= 0) {
        if (timer) clearTimeout(timer);
        draw();
      } else if (!timer) {
        timer = setTimeout(draw, wait);
        timer.unref();
      }
    },
    track(render, everyMs = intervalMs) {
      if (stopped) return;
      if (ticker) clearInterval(ticker);
      progress.update(render);
      ticker = setInterval(() => progress.update(render), everyMs);
      ticker.unref();
    },
    clear() {
      if (stopped || shown === undefined) return;
      shown = undefined;
      stream.write(ERASE);
    },
    done(summary) {
      if (stopped) return;
      progress.clear();
      stopped = true;
      if (timer) clearTimeout(timer);
      if (ticker) clearInterval(ticker);
      if (summary !== undefined) stream.write(`${summary}\n`);
    },
  };
  return progress;
}

/**
 * Runs `work` with a "waiting for the API… N s" line (`label` in place of "waiting for the API") that appears once
 * it has taken a second and is erased when it settles, before its answer or error is printed.
 */
export async function whileWaiting<T>(
  work: () => Promise<T>,
  options: ProgressOptions & { label?: string } = {},
): Promise<T> {
  const progress = createProgress(options);
  if (!progress.active) return work();
  const now = options.now ?? (() => Date.now());
  const started = now();
  progress.track(() => waitingLine(now() - started, options.label), 250);
  try {
    return await work();
  } finally {
    progress.done();
  }
}

/** "waiting for the API… N s" after `elapsedMs`, or nothing (no line) during the first second. */
export function waitingLine(elapsedMs: number, label = "waiting for the API"): string {
  const seconds = Math.floor(elapsedMs / 1000);
  return seconds < 1 ? "" : `${label}… ${seconds} s`;
}

/** `1234567` → `"1.2 MB"` (decimal units, as a terminal's file sizes). */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** Events (or rows) per second over `ms`, as a whole number. */
export function formatRate(count: number, ms: number): string {
  return ms > 0 ? `${Math.round((count * 1000) / ms)}/s` : "–/s";
}
