-- The same request over and over: BENCH_METHOD (default POST), BENCH_BODY, BENCH_HEADERS.
dofile("report.lua")

wrk.method = os.getenv("BENCH_METHOD") or "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers = bench_headers()
