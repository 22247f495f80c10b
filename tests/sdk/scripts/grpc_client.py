"""The SDK's gRPC client (spooled.grpc): every RPC it exposes, the two streams included."""

import threading
import time

from spooled import SpooledClient
from spooled.grpc import (GrpcCompleteRequest, GrpcDequeueRequest, GrpcFailRequest, GrpcRenewLeaseRequest,
                          ProcessRequest, SpooledGrpcClient)

from _sdkcheck import API_KEY, BASE_URL, GRPC_ADDRESS, Checks

checks = Checks()
rest = SpooledClient(api_key=API_KEY, base_url=BASE_URL, timeout=10)
g = SpooledGrpcClient(address=GRPC_ADDRESS, api_key=API_KEY, timeout=10)
Q = "sdk-grpc"
W = "sdk-gw"

with checks("grpc.wait_for_ready"):
    checks.expect(g.wait_for_ready(timeout=10), "ready", g.get_state())

with checks("grpc.workers.register+heartbeat"):
    r = g.workers.register(Q, "host", worker_id=W, max_concurrency=2, metadata={"k": "v"})
    checks.expect(r.worker_id == W and r.heartbeat_interval_secs > 0, "registered", r)
    hb = g.workers.heartbeat(W, current_jobs=0, status="healthy")
    checks.expect(hb.acknowledged and hb.should_drain is False, "heartbeat", hb)

with checks("grpc.enqueue+get_job"):
    e = g.queue.enqueue(Q, {"n": 1}, priority=3, max_retries=1, idempotency_key="g1", tags={"t": "x"})
    checks.expect(e.created and e.job_id, "enqueued", e)
    again = g.queue.enqueue(Q, {"n": 2}, idempotency_key="g1")
    checks.expect(again.job_id == e.job_id and again.created is False, "idempotent", again)
    got = g.queue.get_job(e.job_id).job
    checks.expect(got.id == e.job_id and got.payload == {"n": 1} and got.priority == 3, "job", got)
    checks.expect(rest.jobs.get(e.job_id).payload == {"n": 1}, "same job over REST", None)

with checks("grpc.dequeue+renew+complete"):
    (j,) = g.queue.dequeue(Q, W, batch_size=5, lease_duration_secs=30).jobs
    checks.expect(j.id == e.job_id and j.lease_id and j.assigned_worker_id == W, "dequeued", j)
    rn = g.queue.renew_lease(j.id, W, 90, lease_id=j.lease_id)
    checks.expect(rn.success and rn.new_expires_at, "renewed", rn)
    c = g.queue.complete(j.id, W, {"ok": True}, lease_id=j.lease_id)
    checks.expect(c.success, "completed", c)
    job = rest.jobs.get(j.id)
    checks.expect(job.status == "completed" and job.result == {"ok": True} and job.lease_id is None, "rest", job)

with checks("grpc.fail"):
    f = g.queue.enqueue(Q, {"n": 2}, max_retries=0)   # proto3: 0 means the server default (3)
    (j,) = g.queue.dequeue(Q, W).jobs
    r = g.queue.fail(j.id, W, "transient", lease_id=j.lease_id)
    checks.expect(r.success and r.will_retry is True and r.next_retry_delay_secs >= 0, "will retry", r)
    checks.expect(rest.jobs.get(f.job_id).status == "scheduled", "scheduled", None)
    rest.jobs.cancel(f.job_id)
    rest.jobs.retry(f.job_id)
    (j,) = g.queue.dequeue(Q, W).jobs
    r = g.queue.fail(j.id, W, "boom", retry=False, lease_id=j.lease_id)
    checks.expect(r.success and r.will_retry is False, "failed for good", r)
    checks.expect(rest.jobs.get(f.job_id).status == "deadletter", "dead", None)

with checks("grpc.get_queue_stats"):
    s = g.queue.get_queue_stats(Q)
    checks.expect(s.queue_name == Q and s.completed == 1 and s.deadletter == 1 and s.total == 2, "stats", s)

with checks("grpc.stream_jobs"):
    stream = g.queue.stream_jobs(Q + "-s", W, lease_duration_secs=30)
    got = []

    def consume():
        for job in stream:
            got.append(job)
            g.queue.complete(job.id, W, {"streamed": True}, lease_id=job.lease_id)
            if len(got) == 2:
                break
    t = threading.Thread(target=consume, daemon=True)
    t.start()
    time.sleep(0.3)                        # enqueued after the stream opened: pushed, not polled
    pushed = [g.queue.enqueue(Q + "-s", {"i": i}).job_id for i in range(2)]
    t.join(15)
    stream.cancel()
    checks.expect(not t.is_alive() and sorted(j.id for j in got) == sorted(pushed), "streamed", got)
    checks.expect(all(rest.jobs.get(i).status == "completed" for i in pushed), "completed", None)

with checks("grpc.process_jobs"):
    ids = [g.queue.enqueue(Q + "-p", {"i": i}).job_id for i in range(3)]
    stream = g.queue.process_jobs()
    stream.send(ProcessRequest(dequeue=GrpcDequeueRequest(queue_name=Q + "-p", worker_id=W, batch_size=3)))
    jobs, answers = [], []
    deadline = time.monotonic() + 15
    for resp in stream.receive():
        if resp.job:
            jobs.append(resp.job)
            if len(jobs) == 3:
                a, b, c = jobs
                stream.send(ProcessRequest(complete=GrpcCompleteRequest(job_id=a.id, worker_id=W,
                                                                        lease_id=a.lease_id)))
                stream.send(ProcessRequest(renew_lease=GrpcRenewLeaseRequest(job_id=b.id, worker_id=W,
                                                                             extension_secs=60, lease_id=b.lease_id)))
                stream.send(ProcessRequest(fail=GrpcFailRequest(job_id=b.id, worker_id=W, error="x",
                                                                lease_id=b.lease_id)))
                stream.send(ProcessRequest(complete=GrpcCompleteRequest(job_id=c.id, worker_id=W,
                                                                        lease_id="00000000-0000-4000-8000-000000000000")))
        else:
            answers.append(resp)
            if len(answers) == 4:
                stream.end()
        if time.monotonic() > deadline:
            stream.cancel()
            raise AssertionError(f"process_jobs hung: {jobs} {answers}")
    checks.expect(sorted(j.id for j in jobs) == sorted(ids), "leased", jobs)
    checks.expect(answers[0].complete.success and answers[1].renew_lease.success and answers[2].fail.success,
                  "answers", answers)
    checks.expect(answers[3].error_code == "FAILED_PRECONDITION" and "lease expired" in answers[3].error,
                  "stale lease in-band", answers[3])

with checks("grpc.workers.deregister"):
    checks.expect(g.workers.deregister(W).success, "deregistered", None)
    checks.expect(rest.workers.get(W).status == "offline", "offline", None)

g.close()
rest.close()
checks.finish()
