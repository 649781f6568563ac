import { useCallback, useEffect, useState, type ReactNode } from 'react';
import {
  errorMessage,
  getHealth,
  getVersion,
  type HealthInfo,
  type VersionInfo,
} from './api.ts';

type Load<T> =
  | { state: 'loading' }
  | { state: 'ok'; data: T }
  | { state: 'error'; error: string };

function useLoad<T>(fn: (signal: AbortSignal) => Promise<T>, nonce: number): Load<T> {
  const [load, setLoad] = useState<Load<T>>({ state: 'loading' });
  useEffect(() => {
    const ctl = new AbortController();
    setLoad({ state: 'loading' });
    fn(ctl.signal).then(
      (data) => setLoad({ state: 'ok', data }),
      (err: unknown) => {
        if (!ctl.signal.aborted) setLoad({ state: 'error', error: errorMessage(err) });
      },
    );
    return () => ctl.abort();
  }, [fn, nonce]);
  return load;
}

function Logo() {
  return (
    <svg viewBox="0 0 32 32" width="32" height="32" className="size-8 shrink-0" aria-hidden="true">
      <rect width="32" height="32" rx="7" className="fill-indigo-600" />
      <circle cx="12.5" cy="16" r="6.5" fill="none" stroke="white" strokeWidth="2.5" />
      <circle cx="19.5" cy="16" r="6.5" fill="none" stroke="white" strokeWidth="2.5" opacity=".75" />
    </svg>
  );
}

function Dot({ tone }: { tone: 'ok' | 'warn' | 'bad' | 'idle' }) {
  const color = {
    ok: 'bg-emerald-500',
    warn: 'bg-amber-500',
    bad: 'bg-red-500',
    idle: 'bg-zinc-300 animate-pulse dark:bg-zinc-600',
  }[tone];
  return <span className={`inline-block size-2 rounded-full ${color}`} aria-hidden="true" />;
}

function VersionValue({ load }: { load: Load<VersionInfo> }) {
  let text = 'Loading…';
  if (load.state === 'ok') {
    const { version, revision } = load.data;
    text = revision ? `${version} (${revision})` : version;
  } else if (load.state === 'error') {
    text = 'unavailable';
  }
  return (
    <span
      data-testid="version"
      data-state={load.state}
      className={
        load.state === 'ok'
          ? 'font-mono text-zinc-900 dark:text-zinc-100'
          : 'text-zinc-400 dark:text-zinc-500'
      }
    >
      {text}
    </span>
  );
}

function HealthValue({ load }: { load: Load<HealthInfo> }) {
  let text = 'checking…';
  let tone: 'ok' | 'warn' | 'bad' | 'idle' = 'idle';
  if (load.state === 'ok') {
    text = load.data.status;
    tone = load.data.status === 'ok' ? 'ok' : 'warn';
  } else if (load.state === 'error') {
    text = 'unreachable';
    tone = 'bad';
  }
  return (
    <span className="inline-flex items-center gap-2">
      <Dot tone={tone} />
      <span
        data-testid="health"
        data-state={load.state}
        className="font-medium text-zinc-900 dark:text-zinc-100"
      >
        {text}
      </span>
    </span>
  );
}

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="flex items-center justify-between gap-4 px-5 py-3.5">
      <dt className="text-sm text-zinc-500 dark:text-zinc-400">{label}</dt>
      <dd className="text-sm">{children}</dd>
    </div>
  );
}

export default function App() {
  const [nonce, setNonce] = useState(0);
  const version = useLoad(getVersion, nonce);
  const health = useLoad(getHealth, nonce);
  const refresh = useCallback(() => setNonce((n) => n + 1), []);

  const errors = [version, health].flatMap((l) => (l.state === 'error' ? [l.error] : []));
  const busy = version.state === 'loading' || health.state === 'loading';

  return (
    <div className="min-h-screen bg-zinc-50 text-zinc-900 antialiased dark:bg-zinc-950 dark:text-zinc-100">
      <header className="border-b border-zinc-200 bg-white dark:border-zinc-800 dark:bg-zinc-900">
        <div className="mx-auto flex max-w-3xl items-center gap-3 px-6 py-4">
          <Logo />
          <h1 className="text-lg font-semibold tracking-tight">
            Fusion <span className="font-normal text-zinc-500 dark:text-zinc-400">— LLM Fusion Engine</span>
          </h1>
        </div>
      </header>

      <main className="mx-auto max-w-3xl px-6 py-10">
        <section
          aria-labelledby="status-title"
          className="overflow-hidden rounded-xl border border-zinc-200 bg-white shadow-sm dark:border-zinc-800 dark:bg-zinc-900"
        >
          <div className="flex items-center justify-between border-b border-zinc-200 px-5 py-3 dark:border-zinc-800">
            <h2 id="status-title" className="text-sm font-semibold">
              Server status
            </h2>
            <button
              type="button"
              onClick={refresh}
              disabled={busy}
              className="rounded-md px-2.5 py-1 text-xs font-medium text-indigo-600 hover:bg-indigo-50 disabled:opacity-50 dark:text-indigo-400 dark:hover:bg-indigo-950"
            >
              Refresh
            </button>
          </div>
          <dl className="divide-y divide-zinc-100 dark:divide-zinc-800">
            <Row label="Version">
              <VersionValue load={version} />
            </Row>
            <Row label="Health">
              <HealthValue load={health} />
            </Row>
          </dl>
          {errors.length > 0 && (
            <div
              role="alert"
              data-testid="status-error"
              className="border-t border-red-200 bg-red-50 px-5 py-3 text-sm text-red-800 dark:border-red-900/60 dark:bg-red-950/40 dark:text-red-200"
            >
              <p className="font-medium">Could not load the server status.</p>
              <ul className="mt-1 list-inside list-disc font-mono text-xs">
                {errors.map((e) => (
                  <li key={e}>{e}</li>
                ))}
              </ul>
            </div>
          )}
        </section>

        <p className="mt-6 text-center text-xs text-zinc-400 dark:text-zinc-500">
          Served by the Fusion gateway. Configuration pages will appear here.
        </p>
      </main>
    </div>
  );
}
