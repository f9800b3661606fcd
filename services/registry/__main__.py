import uvicorn

from services.registry.app import Settings
from shared.platform.logs import configure

settings = Settings()
configure("registry")
uvicorn.run("services.registry.app:create_app", factory=True, host=settings.host, port=settings.port)
