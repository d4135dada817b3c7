/**
 * Reading the files a user or a manifest names, so that no path can crash, hang or escape the
 * program: every file-system failure becomes a reason in words, never an exception; only
 * regular files are read (a FIFO blocks, a device never ends), at most a bounded number of
 * bytes; and every read goes through the path with its symlinks resolved. Deno checks read
 * permission against the path it is given, not a symlink's target, so under the compiled
 * binary's `--allow-read=.` a link inside the project could otherwise read any file outside it.
 */

/** The compiled binary (and `deno task deploy`) may read only below the directory it runs in. */
export const READ_OUTSIDE =
  "deploy reads only inside the directory it runs in; run it from the project root";

export type PathInfo =
  | { kind: "file"; size: number }
  | { kind: "directory" }
  /** Nothing there: no such entry, or a part of the path is a file, not a directory. */
  | { kind: "missing"; reason: string }
  | { kind: "unreadable"; reason: string };

export type FileRead =
  | { kind: "read"; bytes: Uint8Array }
  | { kind: "too-large"; size: number }
  | Extract<PathInfo, { kind: "missing" | "unreadable" }>;

/** What is at `path`, following symlinks, within the read permission the program has. */
export function inspectPath(path: string): PathInfo {
  let real: string | undefined;
  let info: Deno.FileInfo;
  try {
    real = Deno.realPathSync(path);
    info = Deno.statSync(real);
  } catch (error) {
    return failure(error, path, real);
  }
  if (info.isFile) return { kind: "file", size: info.size };
  if (info.isDirectory) return { kind: "directory" };
  return { kind: "unreadable", reason: notAFile(info) };
}

/** Reads a regular file of at most `maxBytes`, through its real path. */
export function readProjectFileSync(path: string, maxBytes: number): FileRead {
  const target = openable(path, maxBytes);
  if (!("real" in target)) return target;
  let file: Deno.FsFile | undefined;
  try {
    file = Deno.openSync(target.real, { read: true });
    let buffer = new Uint8Array(initialCapacity(target.size, maxBytes));
    let length = 0;
    while (true) {
      if (length === buffer.length) {
        if (buffer.length > maxBytes) break;
        buffer = grown(buffer, maxBytes);
      }
      const n = file.readSync(buffer.subarray(length));
      if (n === null) break;
      length += n;
    }
    return bounded(buffer, length, maxBytes);
  } catch (error) {
    return failure(error, path, target.real);
  } finally {
    file?.close();
  }
}

/**
 * Room for the file as its size says, plus one byte to notice that it has grown: allocating the
 * full bound for every file (5 MB for each flow source) cost more than reading 100 of them.
 */
const initialCapacity = (size: number, maxBytes: number) => Math.min(size, maxBytes) + 1;

/** The buffer, doubled (never past one byte over the bound), with what it holds so far. */
function grown(buffer: Uint8Array<ArrayBuffer>, maxBytes: number): Uint8Array<ArrayBuffer> {
  const larger = new Uint8Array(Math.min(buffer.length * 2, maxBytes + 1));
  larger.set(buffer);
  return larger;
}

/** The real path and size of a regular file no larger than `maxBytes`, or why it is not one. */
function openable(
  path: string,
  maxBytes: number,
): { real: string; size: number } | Exclude<FileRead, { kind: "read" }> {
  let real: string | undefined;
  try {
    real = Deno.realPathSync(path);
    const info = Deno.statSync(real);
    if (!info.isFile) {
      return info.isDirectory
        ? { kind: "unreadable", reason: "it is a directory, not a file" }
        : { kind: "unreadable", reason: notAFile(info) };
    }
    if (info.size > maxBytes) return { kind: "too-large", size: info.size };
    return { real, size: info.size };
  } catch (error) {
    return failure(error, path, real);
  }
}

/** Bounded even when the size lied (a file growing meanwhile, a /proc entry). */
function bounded(buffer: Uint8Array, length: number, maxBytes: number): FileRead {
  return length > maxBytes
    ? { kind: "too-large", size: length }
    : { kind: "read", bytes: buffer.slice(0, length) };
}

/** The entries of a directory, each with what it leads to; a reason when it cannot be listed. */
export function listDirectory(
  path: string,
): { name: string; info: PathInfo }[] | { reason: string } {
  const entries: { name: string; info: PathInfo }[] = [];
  let real: string | undefined;
  try {
    real = Deno.realPathSync(path);
    for (const entry of Deno.readDirSync(real)) {
      entries.push({
        name: entry.name,
        info: inspectPath(`${path.replace(/\/+$/, "")}/${entry.name}`),
      });
    }
  } catch (error) {
    return { reason: failure(error, path, real).reason };
  }
  return entries;
}

/** A file-system error in words. */
export function fileSystemReason(error: unknown): string {
  return failure(error, "").reason;
}

/** `real`: the path with its symlinks resolved, when that much worked. */
function failure(
  error: unknown,
  path: string,
  real?: string,
): Extract<PathInfo, { reason: string }> {
  const e = error as Error & { code?: string };
  if (e instanceof Deno.errors.NotFound) {
    let link = false;
    try {
      link = path !== "" && Deno.lstatSync(path).isSymlink;
    } catch {
      // not there at all
    }
    return {
      kind: "missing",
      reason: link ? "it is a symbolic link to nothing" : "no such file or directory",
    };
  }
  if (e instanceof Deno.errors.NotADirectory) {
    return { kind: "missing", reason: "a part of the path is a file, not a directory" };
  }
  return { kind: "unreadable", reason: unreadableReason(e, real) };
}

function unreadableReason(e: Error & { code?: string }, real?: string): string {
  if (e instanceof Deno.errors.NotCapable) {
    // The path itself was allowed when its real path is known: a symlink in it leads outside.
    return real ? `it leads to "${real}"; ${READ_OUTSIDE}` : READ_OUTSIDE;
  }
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.FilesystemLoop) return "its symbolic links form a loop";
  if (e instanceof Deno.errors.IsADirectory) return "it is a directory, not a file";
  if (e?.code === "ENAMETOOLONG") return "the name is too long for the file system";
  if (e?.code === "EINVAL" || e?.code === "EILSEQ") {
    return "the name is not valid on this file system";
  }
  return (e?.message ?? String(e)).replace(/ \(os error \d+\).*$/, "").toLowerCase();
}

function notAFile(info: Deno.FileInfo): string {
  if (info.isFifo) return "it is a named pipe (FIFO), not a file";
  if (info.isCharDevice || info.isBlockDevice) return "it is a device, not a file";
  if (info.isSocket) return "it is a socket, not a file";
  return "it is not a regular file";
}
