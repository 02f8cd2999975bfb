from skeldir.adapters.cli import main

main()
