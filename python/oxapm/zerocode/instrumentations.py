"""The OpenTelemetry contrib instrumentation packages, as data: the library (distribution name and
the versions the instrumentation supports) each one instruments, after opentelemetry-bootstrap's
table, without its exact version pins (``oxapm bootstrap`` chooses versions that install).

Not listed, as upstream: opentelemetry-instrumentation-elasticsearch, whose last release is 0.64b0
(elasticsearch-py 8 emits OpenTelemetry spans itself)."""

# (library requirement, instrumentation package)
FOR_LIBRARIES = [
    ("openai >= 1.26.0", "opentelemetry-instrumentation-openai-v2"),
    ("google-cloud-aiplatform >= 1.64", "opentelemetry-instrumentation-vertexai"),
    ("aio_pika >= 7.2.0, < 11.0.0", "opentelemetry-instrumentation-aio-pika"),
    ("aiohttp ~= 3.0", "opentelemetry-instrumentation-aiohttp-client"),
    ("aiohttp ~= 3.0", "opentelemetry-instrumentation-aiohttp-server"),
    ("aiokafka >= 0.8, < 1.0", "opentelemetry-instrumentation-aiokafka"),
    ("aiopg >= 0.13.0, < 2.0.0", "opentelemetry-instrumentation-aiopg"),
    ("asgiref ~= 3.0", "opentelemetry-instrumentation-asgi"),
    ("asyncclick ~= 8.0", "opentelemetry-instrumentation-asyncclick"),
    ("asyncpg >= 0.12.0", "opentelemetry-instrumentation-asyncpg"),
    ("boto3 ~= 1.0", "opentelemetry-instrumentation-boto3sqs"),
    ("botocore ~= 1.0", "opentelemetry-instrumentation-botocore"),
    ("aiobotocore >= 2.0, < 4.0", "opentelemetry-instrumentation-botocore"),
    ("cassandra-driver ~= 3.25", "opentelemetry-instrumentation-cassandra"),
    ("scylla-driver ~= 3.25", "opentelemetry-instrumentation-cassandra"),
    ("celery >= 4.0, < 6.0", "opentelemetry-instrumentation-celery"),
    ("click >= 8.1.3, < 9.0.0", "opentelemetry-instrumentation-click"),
    ("confluent-kafka >= 1.8.2, < 3.0.0", "opentelemetry-instrumentation-confluent-kafka"),
    ("django >= 2.0", "opentelemetry-instrumentation-django"),
    ("falcon >= 1.4.1, < 5.0.0", "opentelemetry-instrumentation-falcon"),
    ("fastapi ~= 0.92", "opentelemetry-instrumentation-fastapi"),
    ("flask >= 1.0", "opentelemetry-instrumentation-flask"),
    ("grpcio >= 1.42.0", "opentelemetry-instrumentation-grpc"),
    ("httpx >= 0.18.0", "opentelemetry-instrumentation-httpx"),
    ("jinja2 >= 2.7, < 4.0", "opentelemetry-instrumentation-jinja2"),
    ("kafka-python >= 2.0, < 4.0", "opentelemetry-instrumentation-kafka-python"),
    ("mysql-connector-python >= 8.0", "opentelemetry-instrumentation-mysql"),
    ("mysqlclient < 3", "opentelemetry-instrumentation-mysqlclient"),
    ("pika >= 0.12.0", "opentelemetry-instrumentation-pika"),
    ("psycopg >= 3.1.0", "opentelemetry-instrumentation-psycopg"),
    ("psycopg2 >= 2.7.3.1", "opentelemetry-instrumentation-psycopg2"),
    ("psycopg2-binary >= 2.7.3.1", "opentelemetry-instrumentation-psycopg2"),
    ("pymemcache >= 1.3.5, < 5", "opentelemetry-instrumentation-pymemcache"),
    ("pymongo >= 3.1, < 5.0", "opentelemetry-instrumentation-pymongo"),
    ("pymssql >= 2.1.5, < 3", "opentelemetry-instrumentation-pymssql"),
    ("PyMySQL < 2", "opentelemetry-instrumentation-pymysql"),
    ("pyramid >= 1.7", "opentelemetry-instrumentation-pyramid"),
    ("redis >= 2.6", "opentelemetry-instrumentation-redis"),
    ("remoulade >= 0.50", "opentelemetry-instrumentation-remoulade"),
    ("requests ~= 2.0", "opentelemetry-instrumentation-requests"),
    ("sqlalchemy >= 1.0.0, < 2.1.0", "opentelemetry-instrumentation-sqlalchemy"),
    ("starlette >= 0.13", "opentelemetry-instrumentation-starlette"),
    ("structlog >= 21.1", "opentelemetry-instrumentation-structlog"),
    ("psutil >= 5", "opentelemetry-instrumentation-system-metrics"),
    ("tornado >= 5.1.1", "opentelemetry-instrumentation-tornado"),
    ("tortoise-orm >= 0.17.0", "opentelemetry-instrumentation-tortoiseorm"),
    ("urllib3 >= 1.0.0, < 3.0.0", "opentelemetry-instrumentation-urllib3"),
]

# Instrumentations of the standard library (and of WSGI and DB-API, which every Python has the
# interfaces of), suggested to every program as opentelemetry-bootstrap does.
FOR_STANDARD_LIBRARY = [
    ("asyncio", "opentelemetry-instrumentation-asyncio"),
    ("dbapi", "opentelemetry-instrumentation-dbapi"),
    ("logging", "opentelemetry-instrumentation-logging"),
    ("sqlite3", "opentelemetry-instrumentation-sqlite3"),
    ("threading", "opentelemetry-instrumentation-threading"),
    ("urllib", "opentelemetry-instrumentation-urllib"),
    ("wsgi", "opentelemetry-instrumentation-wsgi"),
]

# Released on their own version lines, not with the contrib packages (0.N bK, with opentelemetry-api
# 1.(N-21)).
OWN_VERSION_LINE = {"opentelemetry-instrumentation-openai-v2", "opentelemetry-instrumentation-vertexai"}
