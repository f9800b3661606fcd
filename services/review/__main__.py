import uvicorn

from services.review.app import Settings
from shared.platform.logs import configure

settings = Settings()
configure("review")
uvicorn.run("services.review.app:create_app", factory=True, host=settings.host, port=settings.port)
