from airlab_manager.main import main

main()
