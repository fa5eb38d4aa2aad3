// Durable file writes for key material. A key file is either absent or complete: the content goes to a temporary
// sibling first (fsynced), then appears under its name in one step, and the directory entry is fsynced too.
import { randomBytes } from "node:crypto";
import { link, open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

const LINK_UNSUPPORTED = ["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"];

function tempSibling(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
}

async function writeSynced(path: string, text: string, mode: number): Promise<void> {
  const handle = await open(path, "wx", mode);
  try {
    // The umask may have narrowed the mode; it never widens it, but make the result exact either way.
    await handle.chmod(mode);
    await handle.writeFile(text, "utf8");
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

/**
 * Writes `text` to a new file at `path` with exactly `mode`. Never replaces an existing file: returns "exists" and
 * leaves it untouched (link(2) fails atomically when the name is taken, so two writers cannot both win).
 */
export async function writeNewFile(path: string, text: string, mode: number): Promise<"written" | "exists"> {
  const temp = tempSibling(path);
  await writeSynced(temp, text, mode);
  let linked = true;
  try {
    await link(temp, path);
  } catch (error) {
    if (isErrno(error, "EEXIST")) return "exists";
    if (!LINK_UNSUPPORTED.some((code) => isErrno(error, code))) throw error;
    linked = false;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  if (!linked) {
    // Some filesystems (FAT, some network mounts) have no hard links: still exclusive, though no longer atomic.
    try {
      await writeSynced(path, text, mode);
    } catch (error) {
      if (isErrno(error, "EEXIST")) return "exists";
      throw error;
    }
  }
  await syncDirectory(dirname(path));
  return "written";
}

/** Writes `text` to `path` with exactly `mode`, replacing any previous file atomically. */
export async function replaceFile(path: string, text: string, mode: number): Promise<void> {
  const temp = tempSibling(path);
  await writeSynced(temp, text, mode);
  try {
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dirname(path));
}
