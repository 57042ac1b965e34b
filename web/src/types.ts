// Shapes of the API's answers that the dashboard reads (GET /v1/openapi.json has them all).

export type AppStatus = 'created' | 'running' | 'stopped' | 'sleeping' | 'crashed';

export interface Release {
  id: string;
  deploymentId: string;
  runtime?: string;
  sizeBytes?: number;
  createdAt: string;
}

export interface App {
  id: string;
  name: string;
  url: string;
  status: AppStatus;
  port: number;
  resources: { memoryMb: number; cpus: number };
  accessPolicy: string;
  sleepAfterMinutes: number;
  release: Release | null;
  deployment: { id: string; status: DeploymentStatus; createdAt: string } | null;
  instance: string | null;
  data?: { usedBytes: number; quotaBytes: number };
  releasesBytes?: number;
  restarts?: number;
  stats?: {
    cpuSeconds?: number;
    memoryBytes?: number;
    memoryLimitBytes?: number;
    pids?: number;
    oomKills?: number;
  } | null;
  requests?: { total?: number; byClass?: Record<string, number> } | null;
  createdAt: string;
  updatedAt: string;
}

// GET /v1/apps/{app}/stats: one point per interval of the last hour.
export interface StatsPoint {
  time: string;
  seconds: number;
  requests: number;
  rps: number;
  clientErrors: number;
  errors: number;
  bytesIn: number;
  bytesOut: number;
  p50Ms: number;
  p99Ms: number;
  cpuCores: number | null;
  memoryBytes: number | null;
  memoryLimitBytes: number | null;
}

export interface AppStats {
  app: string;
  intervalSeconds: number;
  windowSeconds: number;
  points: StatsPoint[];
}

export type DeploymentStatus =
  | 'queued'
  | 'building'
  | 'deploying'
  | 'live'
  | 'failed'
  | 'cancelled'
  | 'superseded';

export interface Step {
  name: string;
  status: 'pending' | 'running' | 'ok' | 'failed' | 'skipped' | 'cancelled';
  startedAt?: string;
  durationMs?: number;
  error?: string;
}

export interface Deployment {
  id: string;
  app: string;
  appName: string;
  kind: 'deploy' | 'rollback';
  status: DeploymentStatus;
  source: { type: string; [key: string]: unknown };
  config: Record<string, unknown>;
  steps: Step[];
  release: string | null;
  error: { step?: string; code?: string; message?: string; hint?: string } | null;
  url: string;
  createdAt: string;
  finishedAt: string | null;
}

export interface LogLine {
  time: string;
  step?: string;
  stream?: string;
  line: string;
}

export interface EnvVar {
  key: string;
  value: string | null;
  secret: boolean;
  build?: boolean;
  updatedAt?: string;
}

export interface Env {
  vars: EnvVar[];
  note?: string;
  restartRequired?: boolean;
}

export interface Sandbox {
  id: string;
  template: string;
  status: 'running' | 'paused' | 'killed' | 'expired' | 'lost' | 'failed';
  startedAt: string;
  expiresAt: string | null;
  endedAt: string | null;
  endReason: string | null;
  metadata: Record<string, string>;
  network: 'none' | 'egress';
  resources: { memoryMb: number; cpus: number; pids?: number };
  usage?: { memoryBytes?: number; pids?: number; cpuSeconds?: number };
}

export interface FileEntry {
  name: string;
  path: string;
  type: string;
  size: number;
  mode?: string | number;
  mtime?: string;
}

export interface Template {
  name: string;
  description: string | null;
  base: string | null;
  builtin: boolean;
  status: 'ready' | 'building' | 'failed' | 'not_built';
  error?: string;
  steps?: { run: string }[];
  size: number | null;
  createdAt?: string;
  builtAt: string | null;
}

export interface Key {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  status: 'active' | 'revoked' | 'expired';
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
  createdBy: string | null;
  secret?: string;
}

export interface Event {
  id: string;
  type: string;
  actor: string | null;
  subject: string;
  data: Record<string, unknown>;
  createdAt: string;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timedOut: boolean;
  durationMs: number;
}
