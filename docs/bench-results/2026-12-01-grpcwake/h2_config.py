"""h2's receive_data of one grpcio-shaped unary request (HEADERS + DATA), CPU per request (thread_time), with
grpclib's server H2Configuration and with its options as plain attributes (`Fast`). Throwaway, for
docs/benchmarks.md "fifth session, grpcwake":  .venv/bin/python docs/bench-results/2026-12-01-grpcwake/h2_config.py"""
import time, h2.connection, h2.config, h2.events
hdrs = [(':method','POST'),(':scheme','http'),(':path','/spooled.v1.QueueService/Enqueue'),(':authority','127.0.0.1:5000'),
 ('te','trailers'),('content-type','application/grpc'),('user-agent','grpc-python-asyncio/1.62.0 grpc-c/39.0.0 (linux; chttp2)'),
 ('grpc-accept-encoding','identity, deflate, gzip'),('x-api-key','sk_live_'+'a'*40)]
N=3000
def run(cfg_s, label):
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    s = h2.connection.H2Connection(cfg_s)
    c.initiate_connection(); s.initiate_connection()
    s.receive_data(c.data_to_send()); c.receive_data(s.data_to_send()); s.receive_data(c.data_to_send())
    sid = 1; tot = 0
    for i in range(N):
        c.send_headers(sid, hdrs); c.send_data(sid, b'\0\0\0\0\x20'+b'x'*32, end_stream=True)
        b = c.data_to_send()
        t = time.thread_time(); ev = s.receive_data(b); tot += time.thread_time() - t
        [s.acknowledge_received_data(e.flow_controlled_length, e.stream_id) for e in ev if isinstance(e, h2.events.DataReceived)]
        s.send_headers(sid, [(':status','200'),('content-type','application/grpc')]); s.send_data(sid, b'\0\0\0\0\x02ab'); s.send_headers(sid, [('grpc-status','0')], end_stream=True)
        c.receive_data(s.data_to_send()); sid += 2
    print(label, 'feed us', round(tot / N * 1e6, 1))

class Fast(h2.config.H2Configuration):
    client_side = validate_outbound_headers = normalize_outbound_headers = validate_inbound_headers = None
    normalize_inbound_headers = header_encoding = split_outbound_cookies = None
    def __init__(self, **kw):
        super().__init__(**kw)
for k in range(3):
    run(h2.config.H2Configuration(client_side=False, header_encoding='ascii', validate_inbound_headers=False,
        validate_outbound_headers=False, normalize_inbound_headers=False, normalize_outbound_headers=False), 'plain')
    run(Fast(client_side=False, header_encoding='ascii', validate_inbound_headers=False,
        validate_outbound_headers=False, normalize_inbound_headers=False, normalize_outbound_headers=False), 'fastcfg')
