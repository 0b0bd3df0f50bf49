// The @camunda8/sdk job worker (createWorker: ActivateJobs long polling; or streamJobs) on
// faena's Zeebe gateway. Env: ZEEBE_GRPC_ADDRESS (grpc://host:port), TYPE, WORKER_NAME,
// STREAM=1 for streamJobs; CAMUNDA_AUTH_STRATEGY / CAMUNDA_OAUTH_TOKEN as the SDK reads them.
const { Camunda8 } = require('@camunda8/sdk')

const zbc = new Camunda8().getZeebeGrpcApiClient()
const name = process.env.WORKER_NAME || 'node-worker'
const timeout = Number(process.env.TIMEOUT_MS || 30000)

async function taskHandler(job) {
  const { mode, n } = job.variables
  console.log(`handled ${job.key} ${n} ${name} start`)
  if (mode === 'hang' && !process.env.NO_HANG) {
    return new Promise(() => {}) // never reports: the lease runs out
  }
  if (mode === 'slow') {
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  if (mode === 'fail') {
    return job.fail({ errorMessage: `node cannot process ${n}`, retries: job.retries - 1, retryBackOff: 100 })
  }
  if (mode === 'bpmn') {
    return job.error({ errorCode: 'NEG', errorMessage: 'negative', variables: { rejected: n } })
  }
  return job.complete({ doubled: n * 2, by: name })
}

const maxJobsToActivate = Number(process.env.MAX_JOBS || 32)
const config = { taskType: process.env.TYPE, worker: name, timeout, taskHandler, maxJobsToActivate }
if (process.env.STREAM === '1') {
  zbc.streamJobs({ type: process.env.TYPE, worker: name, timeout, taskHandler })
} else {
  zbc.createWorker({ ...config, pollInterval: 200, longPoll: 5000 })
}
process.on('SIGTERM', async () => {
  await zbc.close()
  process.exit(0)
})
