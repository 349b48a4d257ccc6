import { seededRandom } from './seeded-random.js';

/**
 * The demo's company: a directory generated from a seed (the same company every time), and the
 * changes a real one goes through (hires, leavers, renames, moves between teams, and once, early
 * on, a whole department unassigned from the app by mistake: the mass removal dirsync holds).
 * Pure over the DemoDirectory interface, so it drives the demo's Okta and can be tested alone.
 */

/** What the company needs of an IdP directory (the demo's Okta implements it). */
export interface DemoDirectory {
  addUser(login: string, opts: { id: string; status?: 'ACTIVE' | 'SUSPENDED' | 'DEPROVISIONED'; profile: Record<string, unknown> }): void;
  updateUser(id: string, change: { status?: 'ACTIVE' | 'SUSPENDED' | 'DEPROVISIONED'; profile?: Record<string, unknown> }): void;
  addGroup(name: string, opts: { id: string; description: string }): void;
  addMember(groupId: string, userId: string): void;
  removeMember(groupId: string, userId: string): void;
  assignUser(userId: string): void;
  unassignUser(userId: string): void;
  assignGroup(groupId: string): void;
  unassignGroup(groupId: string): void;
}

/** One thing that happened in the company, as the demo prints it. */
export interface CompanyChange {
  readonly kind: 'hire' | 'leaver' | 'rename' | 'move' | 'suspension' | 'return' | 'mass-unassign';
  readonly text: string;
  /** The IdP ids it touched (users, or the group for a mass change). */
  readonly ids: readonly string[];
  readonly target: 'User' | 'UserGroup';
}

export const DEMO_DOMAIN = 'demo.dirsync.test';
export const DEMO_APP_ID = '0oaDemoApp';

const FIRST = ['Ada', 'Ben', 'Chloé', 'Dmitri', 'Ebony', 'Farah', 'Gus', 'Hana', 'Ivan', 'Jonas', 'Kemi', 'Liam', 'Mei', 'Nadia', 'Oskar', 'Priya', 'Quinn', 'Rosa', 'Sami', 'Tomás', 'Uma', 'Vera', 'Wen', 'Xavier', 'Yara', 'Zeke', 'Aoife', 'Björn', 'Carmen', 'Dara'];
const LAST = ['Abbott', 'Bauer', 'Castillo', 'Dubois', 'Eriksen', 'Fischer', 'García', 'Haddad', 'Ito', 'Jensen', 'Kowalski', 'Lindqvist', 'Moreau', 'Nakamura', 'Okafor', 'Petrov', 'Quispe', 'Rossi', 'Silva', 'Tanaka', 'Underwood', 'Varga', 'Weber', 'Xu', 'Yilmaz', 'Zhang'];
const DEPARTMENTS = ['Engineering', 'Sales', 'Marketing', 'Support', 'Finance', 'People', 'Legal', 'Design', 'Product', 'Operations'];
const OFFICES = ['Berlin', 'Lisbon', 'Toronto', 'Singapore'];
/** Groups that are not departments or offices; only some are assigned to the app. */
const TEAMS = ['Managers', 'On-call', 'Admins', 'Beta testers', 'Contractors', 'Security champions'];
const ASSIGNED_TEAMS = new Set(['Managers', 'On-call', 'Admins']);
/** The department the early mass removal unassigns from the app. */
const MASS_DEPARTMENT = 'Sales';

interface Person {
  id: string;
  first: string;
  last: string;
  login: string;
  department: string;
  office: string;
  status: 'ACTIVE' | 'SUSPENDED' | 'DEPROVISIONED';
}


/**
 * The company: `people` employees (about 500) in 20 groups (10 departments, 4 offices, 6 teams),
 * with an app every department but Legal is assigned to through its group, a few people
 * assigned directly (contractors and Legal's admins), and a few suspended.
 */
export class DemoCompany {
  private readonly rand: () => number;
  private readonly people = new Map<string, Person>();
  private readonly logins = new Set<string>();
  private seq = 0;
  private tick = 0;
  private massDone = false;

  constructor(
    private readonly dir: DemoDirectory,
    options: { seed?: number; people?: number } = {},
  ) {
    this.rand = seededRandom(options.seed ?? 20261130);
    this.seed(options.people ?? 500);
  }

  /** Group id of a department, office or team name (stable, Okta-shaped). */
  static groupId(name: string): string {
    return `00gDemo${name.replace(/[^A-Za-z]/g, '')}`;
  }

  /** People the company has now, by status. */
  census(): Record<Person['status'], number> {
    const out = { ACTIVE: 0, SUSPENDED: 0, DEPROVISIONED: 0 };
    for (const p of this.people.values()) out[p.status]++;
    return out;
  }

  private seed(count: number): void {
    for (const name of [...DEPARTMENTS, ...OFFICES, ...TEAMS]) {
      const kind = DEPARTMENTS.includes(name) ? 'Department' : OFFICES.includes(name) ? 'Office' : 'Team';
      this.dir.addGroup(name, { id: DemoCompany.groupId(name), description: `${kind}: ${name}` });
    }
    for (const name of DEPARTMENTS) if (name !== 'Legal') this.dir.assignGroup(DemoCompany.groupId(name));
    for (const name of ASSIGNED_TEAMS) this.dir.assignGroup(DemoCompany.groupId(name));
    for (let i = 0; i < count; i++) {
      const person = this.hire();
      if (i % 12 === 0) this.dir.addMember(DemoCompany.groupId('Managers'), person.id);
      if (i % 25 === 3) this.dir.addMember(DemoCompany.groupId('On-call'), person.id);
      if (i % 50 === 7) this.dir.addMember(DemoCompany.groupId('Admins'), person.id);
      if (i % 9 === 4) this.dir.addMember(DemoCompany.groupId('Beta testers'), person.id);
      if (i % 40 === 11) {
        this.dir.addMember(DemoCompany.groupId('Contractors'), person.id);
        this.dir.assignUser(person.id);
      }
      if (person.department === 'Legal' && i % 3 === 0) this.dir.assignUser(person.id);
      if (i % 60 === 13) this.setStatus(person, 'SUSPENDED');
    }
  }

  /**
   * The changes of one minute: a hire or two, a leaver, now and then a rename, a move between
   * departments, a suspension or a return. On the second tick, once, a whole department is
   * unassigned from the app (a mass removal: dirsync holds it for the admin to approve or not).
   */
  step(): CompanyChange[] {
    this.tick++;
    const changes: CompanyChange[] = [];
    if (this.tick === 2 && !this.massDone) {
      this.massDone = true;
      this.dir.unassignGroup(DemoCompany.groupId(MASS_DEPARTMENT));
      changes.push({ kind: 'mass-unassign', text: `${MASS_DEPARTMENT} unassigned from the app by mistake: a mass removal, held for approval`, ids: [DemoCompany.groupId(MASS_DEPARTMENT)], target: 'UserGroup' });
    }
    for (let i = 0, n = 1 + this.int(2); i < n; i++) {
      const p = this.hire();
      changes.push({ kind: 'hire', text: `hired ${p.first} ${p.last} (${p.department}, ${p.office})`, ids: [p.id], target: 'User' });
    }
    const leaver = this.pick('ACTIVE');
    if (leaver) {
      this.setStatus(leaver, 'DEPROVISIONED');
      changes.push({ kind: 'leaver', text: `${leaver.first} ${leaver.last} left`, ids: [leaver.id], target: 'User' });
    }
    const mover = this.pick('ACTIVE');
    if (mover) {
      const to = this.other(DEPARTMENTS, mover.department);
      this.dir.removeMember(DemoCompany.groupId(mover.department), mover.id);
      this.dir.addMember(DemoCompany.groupId(to), mover.id);
      this.dir.updateUser(mover.id, { profile: { department: to } });
      changes.push({ kind: 'move', text: `${mover.first} ${mover.last} moved from ${mover.department} to ${to}`, ids: [mover.id], target: 'User' });
      mover.department = to;
    }
    if (this.tick % 2 === 0) {
      const renamed = this.pick('ACTIVE');
      if (renamed) {
        const last = this.other(LAST, renamed.last);
        const login = this.freeLogin(renamed.first, last);
        this.dir.updateUser(renamed.id, { profile: { lastName: last, login, email: login } });
        changes.push({ kind: 'rename', text: `${renamed.first} ${renamed.last} is now ${renamed.first} ${last} (${login})`, ids: [renamed.id], target: 'User' });
        this.logins.delete(renamed.login);
        Object.assign(renamed, { last, login });
      }
    }
    if (this.tick % 3 === 0) {
      const suspended = this.pick('ACTIVE');
      if (suspended) {
        this.setStatus(suspended, 'SUSPENDED');
        changes.push({ kind: 'suspension', text: `${suspended.first} ${suspended.last} suspended`, ids: [suspended.id], target: 'User' });
      }
    }
    if (this.tick % 3 === 1) {
      const back = this.pick('SUSPENDED');
      if (back) {
        this.setStatus(back, 'ACTIVE');
        changes.push({ kind: 'return', text: `${back.first} ${back.last} is back (unsuspended)`, ids: [back.id], target: 'User' });
      }
    }
    return changes;
  }

  private hire(): Person {
    const first = FIRST[this.int(FIRST.length)]!;
    const last = LAST[this.int(LAST.length)]!;
    const person: Person = {
      id: `00uDemo${(++this.seq).toString(36).padStart(5, '0')}`,
      first,
      last,
      login: this.freeLogin(first, last),
      department: DEPARTMENTS[this.int(DEPARTMENTS.length)]!,
      office: OFFICES[this.int(OFFICES.length)]!,
      status: 'ACTIVE',
    };
    this.people.set(person.id, person);
    this.dir.addUser(person.login, {
      id: person.id,
      profile: { firstName: first, lastName: last, email: person.login, department: person.department, city: person.office, title: this.rand() < 0.1 ? 'Manager' : 'Staff' },
    });
    this.dir.addMember(DemoCompany.groupId(person.department), person.id);
    this.dir.addMember(DemoCompany.groupId(person.office), person.id);
    return person;
  }

  private setStatus(person: Person, status: Person['status']): void {
    person.status = status;
    this.dir.updateUser(person.id, { status });
  }

  /** A login nobody has: first.last@, then first.last2@, ... */
  private freeLogin(first: string, last: string): string {
    const base = `${ascii(first)}.${ascii(last)}`;
    for (let n = 1; ; n++) {
      const login = `${base}${n === 1 ? '' : n}@${DEMO_DOMAIN}`;
      if (!this.logins.has(login)) {
        this.logins.add(login);
        return login;
      }
    }
  }

  private pick(status: Person['status']): Person | undefined {
    const candidates = [...this.people.values()].filter((p) => p.status === status);
    return candidates.length ? candidates[this.int(candidates.length)] : undefined;
  }

  private other(list: readonly string[], not: string): string {
    const rest = list.filter((x) => x !== not);
    return rest[this.int(rest.length)]!;
  }

  private int(n: number): number {
    return Math.floor(this.rand() * n);
  }
}

/** Lower-case ASCII for a login: accents dropped (Chloé -> chloe), anything else removed. */
function ascii(name: string): string {
  return name.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase().replace(/[^a-z]/g, '');
}
