/** `GET /api/v1/me`: who the admin key is (generated types, like every admin call). */
import { ApiError, UNAUTHORIZED_MESSAGE, api, call, type Schemas } from './client';

export type Me = Schemas['AdminKeyBody'];

/** Asks with the given key (not yet stored: this is how sign-in checks it). A 401 says the key was not accepted. */
export async function fetchMe(key: string): Promise<Me> {
  const answer = api.GET('/api/v1/me', { headers: { authorization: `Bearer ${key}` } });
  try {
    return await call(answer);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) throw new ApiError(401, 'unauthorized', UNAUTHORIZED_MESSAGE);
    throw e;
  }
}
