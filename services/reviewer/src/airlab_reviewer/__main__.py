from airlab_reviewer.main import main

main()
