from services.applications.app import Settings
from shared.platform.service import serve

serve("applications", "services.applications.app:create_app", Settings())
