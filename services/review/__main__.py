from services.review.app import Settings
from shared.platform.service import serve

serve("review", "services.review.app:create_app", Settings())
