from airlab_idea.main import main

main()
