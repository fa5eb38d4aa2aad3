// Structured logs with pino: JSON lines by default (one object per event, fields not prose), a pretty form for
// humans at a terminal. Every component gets a child logger with its name.
import { pino } from "pino";
import pretty from "pino-pretty";

export type Logger = pino.Logger;
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface LogOptions {
  readonly level: LogLevel;
  /** Fields on every line, e.g. { node: "validator-0" }. */
  readonly base?: Record<string, unknown>;
  /** Where lines go: a file descriptor (default 1, stdout). */
  readonly fd?: number;
  /** "pretty": human-readable lines (pino-pretty) instead of JSON. */
  readonly format?: "json" | "pretty";
}

export function createLogger(opts: LogOptions): Logger {
  return pino(
    {
      level: opts.level,
      base: { ...(opts.base ?? {}) },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: pino.stdSerializers.err },
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.format === "pretty"
      ? pretty({ destination: opts.fd ?? 1, colorize: false, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" })
      : pino.destination({ fd: opts.fd ?? 1, sync: false }),
  );
}

/** A logger that drops everything (tests that do not look at logs). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
