from airlab_dashboard.main import main

main()
