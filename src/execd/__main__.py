from execd.cli import main

main()
