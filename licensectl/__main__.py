from licensectl.cli import main

main()
