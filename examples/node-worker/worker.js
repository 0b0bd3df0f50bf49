// A Node.js worker for a faena topic, using the unmodified Camunda 7 external-task client.
//
//   faena server myapp:app --port 8080            # or any Camunda 7 engine
//   npm install && BASE_URL=http://localhost:8080/engine-rest node worker.js
//
// Each task says what to do in its "mode" variable, so one worker shows every outcome:
// ok (complete with typed variables), flaky (fail with retries, then succeed), fatal (fail
// with retries 0: an incident), bpmn (a BPMN error), slow (extendLock while working) and
// hang (never answer: its lock expires and the task goes to another worker).
import { appendFileSync } from "node:fs";
import { BasicAuthInterceptor, Client, Variables } from "camunda-external-task-client-js";

const env = process.env;
const baseUrl = env.BASE_URL ?? "http://localhost:8080/engine-rest";
const topic = env.TOPIC ?? "process-order";
const lockDuration = Number(env.LOCK_MS ?? 50000);
const interceptors = env.CAMUNDA_USER
  ? [new BasicAuthInterceptor({ username: env.CAMUNDA_USER, password: env.CAMUNDA_PASSWORD })]
  : undefined;

const client = new Client({
  baseUrl,
  workerId: env.WORKER_ID ?? `node-${process.pid}`,
  maxTasks: Number(env.MAX_TASKS ?? 10),
  lockDuration,
  interval: Number(env.INTERVAL_MS ?? 300),
  ...(env.ASYNC_TIMEOUT_MS ? { asyncResponseTimeout: Number(env.ASYNC_TIMEOUT_MS) } : {}),
  ...(interceptors ? { interceptors } : {}),
});

const log = (event, fields) =>
  console.log(JSON.stringify({ timestamp: new Date().toISOString(), event, worker: client.options.workerId, ...fields }));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

client.on("poll:error", (e) => log("poll.error", { error_message: String(e) }));
client.on("complete:error", (t, e) => log("complete.error", { job_id: t?.id, error_message: String(e) }));

async function handle({ task, taskService }) {
  if (env.HANDLED_LOG) appendFileSync(env.HANDLED_LOG, `${task.id} ${client.options.workerId}\n`);
  const mode = task.variables.get("mode") ?? "ok";
  const n = task.variables.get("n") ?? 0;
  log("job.claimed", { job_id: task.id, queue: task.topicName, mode, retries: task.retries });

  if (mode === "flaky" && (task.retries === null || task.retries > 1)) {
    const retries = task.retries === null ? 2 : task.retries - 1;
    await taskService.handleFailure(task, {
      errorMessage: "flaky: try again",
      errorDetails: `attempt failed with retries=${task.retries}`,
      retries,
      retryTimeout: 100,
    });
    return log("job.failed", { job_id: task.id, retries });
  }
  if (mode === "fatal") {
    await taskService.handleFailure(task, {
      errorMessage: "fatal: cannot process",
      errorDetails: "Error: fatal\n    at handle (worker.js)",
      retries: 0,
      retryTimeout: 0,
    });
    return log("job.dead", { job_id: task.id });
  }
  if (mode === "bpmn") {
    const vars = new Variables().set("rejected", n);
    await taskService.handleBpmnError(task, "NEG", "negative amount", vars);
    return log("job.bpmn_error", { job_id: task.id });
  }
  if (mode === "hang") {
    return new Promise(() => {}); // never answers: the lock must expire
  }
  if (mode === "slow") {
    const until = Date.now() + Number(task.variables.get("seconds") ?? 3) * 1000;
    while (Date.now() < until) {
      await sleep(Math.min(lockDuration / 3, until - Date.now()));
      if (Date.now() < until) await taskService.extendLock(task, lockDuration);
    }
  }
  const out = new Variables()
    .set("doubled", n * 2)
    .set("flag", true)
    .set("ratio", 1.5)
    .set("label", `done by ${client.options.workerId}`)
    .set("doc", { items: [1, 2], ok: true });
  await taskService.complete(task, out);
  log("job.succeeded", { job_id: task.id, queue: task.topicName });
}

client.subscribe(topic, { lockDuration }, handle);

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    client.stop();
    process.exit(0);
  });
}
