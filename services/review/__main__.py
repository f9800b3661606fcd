import uvicorn

from services.review.app import Settings
from shared.logging import configure

settings = Settings()
configure("review")
uvicorn.run("services.review.app:create_app", factory=True, host=settings.host, port=settings.port)
