echo "run DEV app"
