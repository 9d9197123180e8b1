"""The web workload's requests, served in-process by Flask's test client, for counting the
instructions one request costs (benches/run.py, section web-instructions, runs this under
callgrind). Instruction counts do not depend on the load of the machine, as requests per second do.

    BENCH_DOWNSTREAM_URL=http://... python count_instructions.py --agent none|oxapm --requests N

With ``--agent oxapm`` the agent starts as ``oxapm run`` starts it, configured by the environment.
"""

import argparse

WARM_UP_REQUESTS = 50


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", choices=("none", "oxapm"), required=True)
    parser.add_argument("--requests", type=int, required=True)
    args = parser.parse_args()
    if args.agent == "oxapm":
        from oxapm.zerocode import startup

        startup.start()
    import app  # benches/web/app.py, instrumented when imported, as under a launcher

    client = app.app.test_client()
    for _ in range(WARM_UP_REQUESTS + args.requests):
        client.get("/orders/7").get_data()


if __name__ == "__main__":
    main()
