/** A deployment's report (up/deployments/<id>, the API, the CLI, the page) from its journal rows. */
import { JOB_STAGES, type DeploymentRecord, type DeploymentReport, type JobRecord, type JobStage } from './records.js';

export function buildReport(gateway: string, d: DeploymentRecord, jobs: readonly JobRecord[], waves: number, at: number): DeploymentReport {
  const counts = Object.fromEntries(JOB_STAGES.map((s) => [s, 0])) as Record<JobStage, number>;
  for (const j of jobs) counts[j.stage]++;
  return {
    id: d.id,
    gateway,
    status: d.status,
    code: d.code,
    reason: d.reason,
    artifact: { name: d.artifact.name, version: d.artifact.version, size: d.artifact.size, sha256: d.artifact.sha256 },
    wave: d.wave,
    waves,
    counts,
    jobs: jobs.map((j) => ({
      device: j.device,
      stage: j.stage,
      wave: j.wave,
      bytesAcked: j.bytesAcked,
      bytes: d.artifact.size,
      waiting: j.waiting,
      code: j.code,
      reason: j.reason,
      versionBefore: j.versionBefore,
      versionAfter: j.versionAfter,
    })),
    at,
  };
}

/** The number of waves a deployment's jobs were put in. */
export function waveCount(jobs: readonly JobRecord[]): number {
  return jobs.reduce((n, j) => Math.max(n, j.wave + 1), 0);
}
