"""The peer of the benchmark: a fastapi-users 15 app as its documentation's full
SQLAlchemy example builds it (one module here instead of app/db.py, app/schemas.py,
app/users.py and app/app.py), plus ``GET /healthz`` for the HTTP floor.

- SQLAlchemy 2 async engine on aiosqlite or asyncpg (whichever ``DATABASE_URL`` names),
  the ``User`` table from ``SQLAlchemyBaseUserTableUUID``;
- ``UserManager(UUIDIDMixin, BaseUserManager)`` with the default ``PasswordHelper``
  (pwdlib: argon2id m=65536, t=3, p=4; bcrypt for old hashes);
- ``BearerTransport`` + ``JWTStrategy`` (HS256, 3600 s) mounted at ``/auth/jwt``;
- the register, reset-password, verify and users routers.

The example's ``on_after_*`` hooks only ``print``; they are left out so that no
console output is timed. Configured by the environment: ``DATABASE_URL`` (default
``sqlite+aiosqlite:///./fastapi_users.db``; ``postgresql+asyncpg://…`` for PostgreSQL),
``JWT_SECRET``, and the engine's pool per worker process, ``DATABASE_POOL_SIZE`` and
``DATABASE_MAX_OVERFLOW`` (SQLAlchemy's defaults, 5 and 10, when unset; the harness sets
them on PostgreSQL, see bench/README.md).

Run: ``uvicorn app:app --app-dir bench/fastapi_users_app --workers N --loop uvloop
--http httptools --no-access-log --log-level warning``. With several workers the tables
are created beforehand (``python app.py --create-tables``), as the harness does, so the
workers do not race on ``CREATE TABLE``.
"""

import os
import sys
import uuid
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import (
    AuthenticationBackend,
    BearerTransport,
    JWTStrategy,
)
from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./fastapi_users.db")
SECRET = os.environ.get("JWT_SECRET", "SECRET")


# --- db.py -----------------------------------------------------------------------------
class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    pass


def pool_options() -> dict:
    """The pool's size per worker process, when the environment sets it."""
    opts = {}
    for var, key in (("DATABASE_POOL_SIZE", "pool_size"),
                     ("DATABASE_MAX_OVERFLOW", "max_overflow")):
        if os.environ.get(var):
            opts[key] = int(os.environ[var])
    return opts


engine = create_async_engine(DATABASE_URL, **pool_options())
async_session_maker = async_sessionmaker(engine, expire_on_commit=False)


async def create_db_and_tables() -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


async def get_async_session() -> AsyncGenerator[AsyncSession, None]:
    async with async_session_maker() as session:
        yield session


async def get_user_db(session: AsyncSession = Depends(get_async_session)):
    yield SQLAlchemyUserDatabase(session, User)


# --- schemas.py ------------------------------------------------------------------------
class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


class UserUpdate(schemas.BaseUserUpdate):
    pass


# --- users.py --------------------------------------------------------------------------
class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


async def get_user_manager(user_db: SQLAlchemyUserDatabase = Depends(get_user_db)):
    yield UserManager(user_db)


bearer_transport = BearerTransport(tokenUrl="auth/jwt/login")


def get_jwt_strategy() -> JWTStrategy:
    return JWTStrategy(secret=SECRET, lifetime_seconds=3600)


auth_backend = AuthenticationBackend(
    name="jwt",
    transport=bearer_transport,
    get_strategy=get_jwt_strategy,
)

fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])

current_active_user = fastapi_users.current_user(active=True)


# --- app.py ----------------------------------------------------------------------------
@asynccontextmanager
async def lifespan(app: FastAPI):
    await create_db_and_tables()
    yield


app = FastAPI(lifespan=lifespan)

app.include_router(
    fastapi_users.get_auth_router(auth_backend), prefix="/auth/jwt", tags=["auth"]
)
app.include_router(
    fastapi_users.get_register_router(UserRead, UserCreate),
    prefix="/auth",
    tags=["auth"],
)
app.include_router(
    fastapi_users.get_reset_password_router(),
    prefix="/auth",
    tags=["auth"],
)
app.include_router(
    fastapi_users.get_verify_router(UserRead),
    prefix="/auth",
    tags=["auth"],
)
app.include_router(
    fastapi_users.get_users_router(UserRead, UserUpdate),
    prefix="/users",
    tags=["users"],
)


@app.get("/authenticated-route")
async def authenticated_route(user: User = Depends(current_active_user)):
    return {"message": f"Hello {user.email}!"}


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


if __name__ == "__main__":
    if sys.argv[1:] == ["--create-tables"]:
        import asyncio

        asyncio.run(create_db_and_tables())
    else:
        print(__doc__)
