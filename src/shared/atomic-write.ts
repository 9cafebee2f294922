/**
 * Replacing a file atomically: the bytes go to a temporary file beside it, which then takes the
 * file's name with one rename. A reader, or a crash at any moment, sees the old file (or none)
 * or the new one, never part of one; a write that fails removes its temporary file.
 *
 * `durable` is for state that must survive a power loss (the source log's rewritten files, dead
 * letters): the temporary file is fsync'd before the rename, and the folder after it, since a
 * rename is only on disk once its folder is. Build outputs and reports skip both: they are
 * written by the thousand and made again by running the command again.
 *
 * The temporary file is hidden (`.NAME.PID-RANDOM.tmp`) and unique, so that two writers of one
 * name never share it; only a process killed in the middle of a write leaves one behind.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { type FileHandle, open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export interface AtomicWriteOptions {
  /** fsync the file before it takes the name, and its folder after. */
  durable: boolean;
  /** The mode the file is created with (the umask applies, as for fs.writeFile); default 0o666. */
  mode?: number;
}

/** Folders that cannot be opened or fsync'd on some platforms and file systems: their files' own fsyncs still hold. */
const CANNOT_SYNC_FOLDER = new Set(["EISDIR", "EPERM", "EINVAL", "EACCES"]);

let written = 0;

/**
 * The temporary file that becomes `path`: in its folder, so that the rename does not cross file
 * systems. Unique within the process by a counter, across processes by the pid and a random part
 * (no secret: it is created with O_EXCL, which neither follows a link nor opens a file that exists).
 */
function temporaryPath(path: string): string {
  written += 1;
  const random = Math.random().toString(36).slice(2, 8);
  // NAME_MAX is 255 bytes on the usual file systems: 50 characters are at most 200 bytes.
  return join(dirname(path), `.${basename(path).slice(0, 50)}.${process.pid}-${written}-${random}.tmp`);
}

function bytesOf(data: string | Uint8Array): Uint8Array {
  return typeof data === "string" ? Buffer.from(data, "utf8") : data;
}

/** Replaces (or creates) `path` with `data` atomically; see the module's comment. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions): Promise<void> {
  const temp = temporaryPath(path);
  const bytes = bytesOf(data);
  let handle: FileHandle | null = null;
  let created = false;
  try {
    handle = await open(temp, "wx", options.mode ?? 0o666);
    created = true;
    let offset = 0;
    while (offset < bytes.length) offset += (await handle.write(bytes, offset, bytes.length - offset)).bytesWritten;
    if (options.durable) await handle.sync();
    const closing = handle;
    handle = null;
    await closing.close();
    await rename(temp, path);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    if (created) await unlink(temp).catch(() => undefined);
    throw err;
  }
  if (options.durable) await syncFolder(dirname(path));
}

/** writeFileAtomic for synchronous callers (the CLI). */
export function writeFileAtomicSync(path: string, data: string | Uint8Array, options: AtomicWriteOptions): void {
  const temp = temporaryPath(path);
  const bytes = bytesOf(data);
  let fd: number | null = null;
  let created = false;
  try {
    fd = openSync(temp, "wx", options.mode ?? 0o666);
    created = true;
    let offset = 0;
    while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
    if (options.durable) fsyncSync(fd);
    const closing = fd;
    fd = null;
    closeSync(closing);
    renameSync(temp, path);
  } catch (err) {
    if (fd !== null) {
      try {
        closeSync(fd);
      } catch {}
    }
    if (created) {
      try {
        unlinkSync(temp);
      } catch {}
    }
    throw err;
  }
  if (options.durable) syncFolderSync(dirname(path));
}

/**
 * fsync a folder, so that the names just created, renamed or removed in it survive a power loss.
 * Platforms that cannot are let be; any other error (EIO, say) is thrown.
 */
export async function syncFolder(dir: string): Promise<void> {
  let handle: FileHandle | null = null;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch (err) {
    if (!CANNOT_SYNC_FOLDER.has((err as NodeJS.ErrnoException).code ?? "")) throw err;
  } finally {
    await handle?.close();
  }
}

function syncFolderSync(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch (err) {
    if (!CANNOT_SYNC_FOLDER.has((err as NodeJS.ErrnoException).code ?? "")) throw err;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
