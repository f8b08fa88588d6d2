from airlab_runner.main import main

main()
