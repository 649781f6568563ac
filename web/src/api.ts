// Minimal typed client for the Fusion server's JSON endpoints.  Same-origin
// only: the UI is served by the gateway itself.

export interface VersionInfo {
  version: string;
  revision: string;
}

export interface HealthInfo {
  status: string;
  version?: string;
}

export class ApiError extends Error {
  readonly status: number;
  constructor(message: string, status = 0) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

const TIMEOUT_MS = 10_000;

async function getJson(path: string, signal?: AbortSignal): Promise<unknown> {
  const timeout = AbortSignal.timeout(TIMEOUT_MS);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let res: Response;
  try {
    res = await fetch(path, {
      headers: { Accept: 'application/json' },
      cache: 'no-store',
      signal: combined,
    });
  } catch (err) {
    if (signal?.aborted) throw err;
    if (timeout.aborted) throw new ApiError(`GET ${path}: timed out`);
    throw new ApiError(`GET ${path}: server unreachable`);
  }
  if (!res.ok) {
    throw new ApiError(`GET ${path}: HTTP ${res.status}`, res.status);
  }
  try {
    return await res.json();
  } catch {
    throw new ApiError(`GET ${path}: invalid JSON`, res.status);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export async function getVersion(signal?: AbortSignal): Promise<VersionInfo> {
  const body = await getJson('/api/version', signal);
  if (!isObject(body) || typeof body.version !== 'string') {
    throw new ApiError('GET /api/version: unexpected response');
  }
  return {
    version: body.version,
    revision: typeof body.revision === 'string' ? body.revision : '',
  };
}

export async function getHealth(signal?: AbortSignal): Promise<HealthInfo> {
  const body = await getJson('/healthz', signal);
  if (!isObject(body) || typeof body.status !== 'string') {
    throw new ApiError('GET /healthz: unexpected response');
  }
  const info: HealthInfo = { status: body.status };
  if (typeof body.version === 'string') info.version = body.version;
  return info;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
