from airlab_coder.main import main

main()
