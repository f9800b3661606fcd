from services.console.app import serve

serve()
