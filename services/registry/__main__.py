from services.registry.app import Settings
from shared.platform.service import serve

serve("registry", "services.registry.app:create_app", Settings())
