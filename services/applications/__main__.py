import uvicorn

from services.applications.app import Settings
from shared.platform.logs import configure

settings = Settings()
configure("applications")
uvicorn.run("services.applications.app:create_app", factory=True, host=settings.host, port=settings.port)
