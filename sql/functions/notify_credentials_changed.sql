-- Statement trigger on every table a credential resolution reads: the API processes clear
-- their source cache on skeldir_sources_changed (delivered at commit), whoever writes.
CREATE OR REPLACE FUNCTION public.notify_credentials_changed()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
BEGIN
    PERFORM pg_notify('skeldir_sources_changed', '');
    RETURN NULL;
END
$function$;
