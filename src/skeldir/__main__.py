from skeldir.cli import main

main()
