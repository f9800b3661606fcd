from shared.platform.migrations_env import run

run()
