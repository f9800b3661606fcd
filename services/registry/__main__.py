import uvicorn

from services.registry.app import Settings
from shared.logging import configure

settings = Settings()
configure("registry")
uvicorn.run("services.registry.app:create_app", factory=True, host=settings.host, port=settings.port)
