from core.keys import read_secret

from .base import *  # noqa: F403
from .base import SECRET_KEY_FILE, env_bool

DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = read_secret(env="DJANGO_SECRET_KEY", key_file=SECRET_KEY_FILE, create=True)
