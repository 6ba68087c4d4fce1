-- The drains table and its NOTIFY triggers, compatible with logtrain's.
-- Idempotent; run under an advisory lock so nodes starting together do not race.
create table if not exists drains (
    drain uuid primary key default gen_random_uuid(),
    hostname text not null,
    endpoint text not null,
    created timestamptz default now(),
    updated timestamptz default now()
);

create or replace function notify_drains_insert() returns trigger as $$
begin
  perform pg_notify('drains.insert', row_to_json(NEW)::text);
  return NEW;
end;
$$ language plpgsql;

create or replace function notify_drains_update() returns trigger as $$
begin
  perform pg_notify('drains.update', '{"old":' || row_to_json(OLD)::text || ',"new":' || row_to_json(NEW)::text || '}');
  return NEW;
end;
$$ language plpgsql;

create or replace function notify_drains_delete() returns trigger as $$
begin
  perform pg_notify('drains.delete', row_to_json(OLD)::text);
  return OLD;
end;
$$ language plpgsql;

do $do$
begin
  if not exists (select 1 from pg_trigger where not tgisinternal and tgname = 'notify_drains_insert') then
    create trigger notify_drains_insert after insert on drains for each row execute procedure notify_drains_insert();
  end if;
  if not exists (select 1 from pg_trigger where not tgisinternal and tgname = 'notify_drains_update') then
    create trigger notify_drains_update after update on drains for each row execute procedure notify_drains_update();
  end if;
  if not exists (select 1 from pg_trigger where not tgisinternal and tgname = 'notify_drains_delete') then
    create trigger notify_drains_delete after delete on drains for each row execute procedure notify_drains_delete();
  end if;
end
$do$;
